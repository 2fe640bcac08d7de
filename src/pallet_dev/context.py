"""The per-invocation context: global options, config, paths, runner and log."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev.errors import LockTimeout
from pallet_dev.eventlog import EventLog
from pallet_dev.output import Steps
from pallet_dev.paths import Paths, default_paths
from pallet_dev.runner import Runner

if TYPE_CHECKING:
    from pallet_dev.settings import Overrides, Settings

DEFAULT_LOCK_TIMEOUT = 300.0
# the key of what the last `up` verified in the state file (backends/kind_record.py)
UP_RECORD = "up_record"


@dataclass
class AppContext:
    config_file: Path | None = None
    verbose: bool = False
    debug: bool = False
    command: str = ""
    paths: Paths = field(default_factory=default_paths)
    _log: EventLog | None = None
    _runner: Runner | None = None
    config_path: Path | None = None  # the config file the settings came from, if any
    # settings already loaded in this run, by the overrides given (None values left out)
    _loaded: dict[tuple[tuple[tuple[str, ...], Any], ...], Settings] = field(
        default_factory=dict, repr=False
    )

    @property
    def log(self) -> EventLog:
        if self._log is None:
            self._log = EventLog(
                self.paths.log_file(),
                command=self.command,
                mirror=sys.stderr if self.verbose else None,
            )
        return self._log

    @property
    def log_path(self) -> Path | None:
        """The log file, once something was written to it (errors name it)."""
        return self._log.path if self._log is not None else None

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(self.log, engine_api=True)
        return self._runner

    def load_settings(self, overrides: Overrides | None = None) -> Settings:
        """The validated settings (settings.load_settings: cached, or validated and stored)."""
        from pallet_dev.settings import load_settings

        given = tuple(sorted((k, v) for k, v in (overrides or {}).items() if v is not None))
        if given in self._loaded:  # a fast path loaded them already (bypass.py)
            return self._loaded[given]
        settings, cached = load_settings(self.config_file, self.paths, overrides=overrides)
        self._loaded[given] = settings
        self.config_path = settings.config_file
        file = str(settings.config_file) if settings.config_file else None
        self.log.write("config", file=file, name=settings.name, cached=cached)
        return settings

    def steps(self, *, quiet: bool = False) -> Steps:
        from pallet_dev.output import make_steps

        if self.verbose:  # log lines mirrored to stderr would tear a live display apart
            return Steps(sys.stderr, quiet=quiet)
        return make_steps(sys.stderr, quiet=quiet)

    # which backend `up` last brought up, so `health` needs no subprocess to know
    def _state_file(self, env_name: str) -> Path:
        return self.paths.state_dir / f"{env_name}.json"

    def record_active(
        self,
        env_name: str,
        backend: str,
        endpoint: str,
        agents: Mapping[str, Any] | None = None,
        network_pull_host: str | None = None,
        up_record: Mapping[str, Any] | None = None,
    ) -> None:
        """What `up` brought up; ``agents`` is an AgentsState.to_dict() for `health`;
        ``network_pull_host`` is Backend.network_pull_host, for `push`; ``up_record`` is
        UpResult.record, for the next `up`."""
        data: dict[str, Any] = {"backend": backend, "endpoint": endpoint}
        if network_pull_host is not None:
            data["network_pull_host"] = network_pull_host
        if agents is not None:
            data["agents"] = dict(agents)
        if up_record is not None:
            data[UP_RECORD] = dict(up_record)
        self._write_state(env_name, data)

    def forget_up_record(self, env_name: str) -> None:
        """Before `up` changes anything: the last `up`'s record may no longer hold."""
        data = self.active(env_name)
        if data is not None and UP_RECORD in data:
            del data[UP_RECORD]
            self._write_state(env_name, data)

    def _write_state(self, env_name: str, data: Mapping[str, Any]) -> None:
        path = self._state_file(env_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data) + "\n")
        os.replace(partial, path)

    def active(self, env_name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._state_file(env_name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def forget_active(self, env_name: str) -> None:
        self._state_file(env_name).unlink(missing_ok=True)

    @contextmanager
    def env_lock(self, env_name: str, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the environment's lock: one `up`/`down` at a time per environment.

        An flock(2) on a file in the state folder: the kernel releases it when the
        process ends, however it ends, so a crashed run never leaves a stale lock.
        """
        import fcntl

        path = self.paths.lock_file(env_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

        def try_lock() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            if not try_lock():
                print(
                    f"Another pallet-dev run is changing '{env_name}'; waiting up to "
                    f"{timeout:g} s for it to finish ...",
                    file=sys.stderr,
                    flush=True,
                )
                deadline = time.monotonic() + timeout
                while not try_lock():
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"Another pallet-dev run still holds the lock on '{env_name}' "
                            f"after {timeout:g} s ({path}).",
                            hint="Wait for it to finish, or stop it; the lock is released "
                            "when it exits.",
                        )
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)  # releases the lock
