"""The one subprocess runner every external tool call goes through.

argv lists only (never a shell), the binary resolved on PATH with an install
hint when missing, the environment merged (never replaced), stdin closed, a
timeout on every call, each call logged, and a typed error that carries the
command, exit code and the tail of stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pallet_dev.errors import CommandFailed, CommandTimeout, Interrupted, ToolNotFound
from pallet_dev.eventlog import NULL_LOG, EventLog

INSTALL_HINTS: dict[str, str] = {
    "docker": "Install Docker (https://docs.docker.com/get-docker/) and start it.",
    "kind": "Install kind: `go install sigs.k8s.io/kind@v0.31.0` or "
    "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "Install Helm 3.x or 4.x: https://helm.sh/docs/intro/install/",
    "kubectl": "Install kubectl: https://kubernetes.io/docs/tasks/tools/",
}

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner:
    """Runs external tools. Tests replace it with a fake at this seam."""

    def __init__(self, log: EventLog = NULL_LOG, *, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.extra_env = dict(env or {})

    def which(self, tool: str) -> str:
        path = shutil.which(tool)
        if path is None:
            raise ToolNotFound(tool, hint=INSTALL_HINTS.get(tool))
        return path

    def has(self, tool: str) -> bool:
        return shutil.which(tool) is not None

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        stream: bool = False,
        step: str = "",
        on_output: Callable[[str], None] | None = None,
        to_stdout: bool = False,
    ) -> CommandResult:
        """Run ``argv``; raise CommandFailed on non-zero exit when ``check``.

        ``stream`` sends the tool's output to our stderr as it comes (progress of
        long pulls) instead of capturing it; ``to_stdout`` sends it to our stdout
        (`logs`). ``on_output`` captures stdout and stderr together and hands each
        line to the callback as it comes (live build output), the whole text ending
        up in the result's ``stdout``.
        """
        if on_output is not None:
            return self._run_lines(argv, timeout, check, env, on_output, step)
        if not argv:
            raise ValueError("empty argv")
        argv = [str(arg) for arg in argv]
        resolved = self.which(argv[0])
        merged = {**os.environ, **self.extra_env, **(env or {})}
        started = time.monotonic()
        self.log.write("exec", step=step, argv=argv)
        try:
            proc = subprocess.Popen(
                [resolved, *argv[1:]],
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=sys.stdout if to_stdout else sys.stderr if stream else subprocess.PIPE,
                stderr=sys.stderr if stream or to_stdout else subprocess.PIPE,
                env=merged,
                text=True,
                # own process group: Ctrl-C reaches us once, and we stop the tool ourselves
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandFailed(argv, 127, "", str(exc)) from exc
        try:
            stdout, stderr = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            self.log.write("timeout", step=step, argv=argv, timeout=timeout)
            raise CommandTimeout(argv, timeout) from None
        except (KeyboardInterrupt, Interrupted):
            _stop(proc)
            self.log.write("interrupted", step=step, argv=argv)
            raise
        duration = time.monotonic() - started
        result = CommandResult(
            tuple(argv), proc.returncode, stdout or "", stderr or "", round(duration, 4)
        )
        self.log.write(
            "exit", step=step, argv=argv, exit_code=proc.returncode, duration_s=result.duration
        )
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, result.stdout, result.stderr)
        return result

    def _run_lines(
        self,
        argv: Sequence[str],
        timeout: float,
        check: bool,
        env: Mapping[str, str] | None,
        on_output: Callable[[str], None],
        step: str,
    ) -> CommandResult:
        import threading

        argv = [str(arg) for arg in argv]
        resolved = self.which(argv[0])
        merged = {**os.environ, **self.extra_env, **(env or {})}
        started = time.monotonic()
        self.log.write("exec", step=step, argv=argv)
        try:
            proc = subprocess.Popen(
                [resolved, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=merged,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandFailed(argv, 127, "", str(exc)) from exc
        lines: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                try:
                    on_output(line.rstrip("\n"))
                except Exception:  # a display problem never stops the tool
                    pass

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            self.log.write("timeout", step=step, argv=argv, timeout=timeout)
            raise CommandTimeout(argv, timeout) from None
        except (KeyboardInterrupt, Interrupted):
            _stop(proc)
            self.log.write("interrupted", step=step, argv=argv)
            raise
        reader.join(5)
        output = "".join(lines)
        duration = time.monotonic() - started
        result = CommandResult(tuple(argv), proc.returncode, output, "", round(duration, 4))
        self.log.write(
            "exit", step=step, argv=argv, exit_code=proc.returncode, duration_s=result.duration
        )
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, output, "")
        return result


def _stop(proc: subprocess.Popen[str]) -> None:
    """Terminate the tool's process group, then kill it if it does not go."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        proc.communicate(timeout=1)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass
