"""The pull-through caches on the Docker backend: one labelled container per upstream.

Each runs the registry image in proxy mode (mirrors.py), named ``<env>-mirror-<slug>``,
on the environment's network (containers there reach it by name), published on a
127.0.0.1 port that is kept in the environment's state (``<env>.mirrors.json``), with its
cache in a volume of its own that only `down --clean` removes. pallet-dev never edits the
Docker daemon's configuration: :meth:`DockerMirrors.daemon_advice` says whether the daemon
sends docker.io pulls to the cache, and the daemon.json line if not.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev import mirrors
from pallet_dev.backends.base import PlanStep
from pallet_dev.backends.steps import Deadline, StepWarning
from pallet_dev.chart.constants import CONTAINER_PORT
from pallet_dev.errors import CommandFailed, OperationFailed, PalletError
from pallet_dev.output import Steps
from pallet_dev.ports import port_is_free
from pallet_dev.tools.docker import LABEL_ENV, LABEL_MANAGED, LABEL_SPEC, ContainerExists, Docker
from pallet_dev.tools.docker_types import ContainerInfo, ContainerSpec, VolumeMount

if TYPE_CHECKING:
    from pallet_dev.paths import Paths
    from pallet_dev.settings import MirrorSettings, Settings

LABEL_MIRROR = "dev.pallet.mirror"  # the upstream a cache container serves
BIND = "127.0.0.1"
DATA_PATH = "/var/lib/registry"
# a cache starts in well under a second (it does not contact its remote to start); one
# that does not answer within this is reported, and `up` goes on without it
READY_SECONDS = 20.0


class DockerMirrors:
    def __init__(self, docker: Docker, config: Settings, paths: Paths) -> None:
        self.docker = docker
        self.config = config
        self.paths = paths

    @property
    def network(self) -> str:
        return self.config.name  # the agents' network (docker_agents.py)

    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_ENV: self.config.name}

    def name(self, mirror: MirrorSettings) -> str:
        return mirrors.container_name(self.config.name, mirror.upstream)

    def volume(self, mirror: MirrorSettings) -> str:
        return mirrors.volume_name(self.config.name, mirror.upstream)

    # --- the recorded host ports --------------------------------------------------------
    @property
    def ports_file(self) -> Path:
        return self.paths.state_dir / f"{self.config.name}.mirrors.json"

    def recorded_ports(self) -> dict[str, int]:
        try:
            data = json.loads(self.ports_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}

    def _record_ports(self, ports: dict[str, int]) -> None:
        if ports == self.recorded_ports():
            return
        self.ports_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.ports_file.with_name(f"{self.ports_file.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(ports, sort_keys=True), encoding="utf-8")
        os.replace(partial, self.ports_file)

    # --- the containers -----------------------------------------------------------------
    def spec(self, mirror: MirrorSettings, host_port: int | None) -> ContainerSpec:
        """The cache container; its spec hash leaves out the host port (kept, not chosen)."""
        with_credentials = mirror.username_env is not None
        extra: list[str] = []
        if with_credentials:
            # names only: the docker CLI copies the values from its own environment
            extra += ["--env", mirrors.USERNAME_VAR, "--env", mirrors.PASSWORD_VAR]
        basis: list[str] = []
        if mirror.ca_file:
            target = f"{mirrors.CA_MOUNT_DIR}/{mirrors.CA_FILE_NAME}"
            extra += ["--mount", f"type=bind,src={mirror.ca_file},dst={target},readonly"]
            basis.append(_file_digest(mirror.ca_file))
        labels = {**self.labels(), LABEL_MIRROR: mirror.upstream}
        spec = ContainerSpec(
            name=self.name(mirror),
            image=self.config.registry.image,
            labels=labels,
            publish=[f"{BIND}:{host_port or ''}:{CONTAINER_PORT}"],
            volumes=[VolumeMount(self.volume(mirror), DATA_PATH, self.labels())],
            env=mirrors.proxy_env(mirror, with_credentials=with_credentials),
            network=self.network,
            extra=extra,
        )
        basis += replace(spec, publish=[]).run_argv()
        digest = hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]
        return replace(spec, labels={**labels, LABEL_SPEC: digest})

    def plan(self) -> list[PlanStep]:
        stale = (
            "Remove the cache containers of upstreams no longer configured (listed in "
            + str(self.ports_file)
            + "; their volumes are kept)"
        )
        steps = [
            PlanStep(stale, [], detail="docker container rm --force --volumes <env>-mirror-<slug>")
        ]
        steps += [
            PlanStep(
                f"Start the pull-through cache for {mirror.upstream} (proxy of "
                f"{mirror.remote_url}; cache in volume {self.volume(mirror)}, kept by `down`)",
                self.spec(mirror, None).run_argv(),
                detail="only when missing or changed; the host port is kept in "
                f"{self.ports_file}",
            )
            for mirror in self.config.mirrors
        ]
        if any(mirror.upstream == mirrors.DOCKER_HUB for mirror in self.config.mirrors):
            steps.append(
                PlanStep(
                    "When the docker.io cache was started: check whether the Docker daemon uses"
                    " it (never edits daemon.json)",
                    ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"],
                )
            )
        return steps

    def existing(self) -> dict[str, ContainerInfo]:
        """This environment's cache containers by name (configured or not)."""
        names = self.docker.containers_with_labels(self.labels(), key=LABEL_MIRROR)
        return self.docker.inspect_containers(names)

    def names(self) -> list[str]:
        """The configured caches' container names."""
        return [self.name(mirror) for mirror in self.config.mirrors]

    def ensure(
        self,
        deadline: Deadline,
        ui: Steps,
        ensure_network: Callable[[], None],
        known: Mapping[str, ContainerInfo] | None = None,
        *,
        recreate: bool = False,
    ) -> list[str]:
        """Converge the caches; returns the actions taken. ``known``: the configured caches'
        containers as already inspected (missing ones left out). A cache that does not
        answer is a warning (its remote may need credentials it cannot reach), never a
        failure.

        Caches no longer configured are those the state file lists: an unchanged `up`
        costs no `docker container ls`.
        """
        actions: list[str] = []
        wanted = {self.name(mirror): mirror for mirror in self.config.mirrors}
        recorded = self.recorded_ports()
        configured = {mirror.upstream for mirror in self.config.mirrors}
        for upstream in sorted(set(recorded) - configured):
            name = mirrors.container_name(self.config.name, upstream)
            with ui.step(f"Removing the cache container {name} (no longer configured)"):
                self.docker.remove(name)
            actions.append("removed-mirror")
        if not wanted:
            if recorded:
                self._record_ports({})
            return actions
        for mirror in self.config.mirrors:
            mirrors.credentials(mirror)  # a missing variable: ConfigError before any change
        existing = (
            dict(known) if known is not None else self.docker.inspect_containers(list(wanted))
        )
        todo: list[tuple[MirrorSettings, ContainerInfo | None]] = []
        for name, mirror in wanted.items():
            found = existing.get(name)
            same = found is not None and found.labels.get(LABEL_SPEC) == self.spec_hash(mirror)
            if recreate or not (same and found is not None and found.running):
                todo.append((mirror, found))
        ports = {
            name: info.published[f"{CONTAINER_PORT}/tcp"]
            for name, info in existing.items()
            if name in wanted and f"{CONTAINER_PORT}/tcp" in info.published
        }
        if todo:
            ensure_network()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pallet-dev-mirror") as pool:
                list(
                    pool.map(lambda item: self._converge(item, recorded, deadline, recreate), todo)
                )
            ui.done(
                f"Started {len(todo)} pull-through cache{'s' if len(todo) > 1 else ''} "
                f"({', '.join(mirror.upstream for mirror, _ in todo)})",
                time.monotonic() - started,
            )
            actions.append("started-mirrors")
            ports = self.published_ports(list(wanted))
        self._record_ports({wanted[name].upstream: port for name, port in ports.items()})
        if todo:
            started_names = {self.name(mirror) for mirror, _ in todo}
            warning = self.await_ready(
                {name: port for name, port in ports.items() if name in started_names}, deadline
            )
            if warning is not None:
                ui.warn(warning.text)
        return actions

    def spec_hash(self, mirror: MirrorSettings) -> str:
        return self.spec(mirror, None).labels[LABEL_SPEC]

    def _converge(
        self,
        item: tuple[MirrorSettings, ContainerInfo | None],
        recorded: dict[str, int],
        deadline: Deadline,
        recreate: bool = False,
    ) -> None:
        """Start, replace or create one cache; ``recreate`` replaces it whatever its state
        (`up --recreate`: new credentials from the variables; the volume is kept)."""
        mirror, info = item
        docker = Docker(self.docker.runner, timeout=deadline.cap(60.0, "starting a cache"))
        spec = self.spec(mirror, None)
        same = info is not None and info.labels.get(LABEL_SPEC) == spec.labels[LABEL_SPEC]
        if same and not recreate:
            docker.start(spec.name)  # same container, stopped: start it
            return
        if info is not None:
            docker.remove(spec.name)
        port = recorded.get(mirror.upstream)
        if port is not None and not port_is_free(BIND, port):
            port = None
        spec = self.spec(mirror, port)
        env: dict[str, str] = {}
        found = mirrors.credentials(mirror)
        if found is not None:
            env = {mirrors.USERNAME_VAR: found.username, mirrors.PASSWORD_VAR: found.password}
        try:
            docker.run(spec, env=env)
        except ContainerExists:
            raise OperationFailed(
                f"A container named '{spec.name}' appeared while `up` was creating it.",
                hint="Run `pallet-dev up` again.",
            ) from None
        except CommandFailed:
            docker.remove(spec.name)
            raise

    def published_ports(self, names: Sequence[str]) -> dict[str, int]:
        found = self.docker.inspect_containers(names)
        return {
            name: info.published[f"{CONTAINER_PORT}/tcp"]
            for name, info in found.items()
            if f"{CONTAINER_PORT}/tcp" in info.published
        }

    def start_fresh(self, mirror: MirrorSettings, deadline: Deadline) -> None:
        """Start the cache anew (`gc --mirrors` removed it and its volume) at its recorded
        host port, as `up` would."""
        recorded = self.recorded_ports()
        self._converge((mirror, None), recorded, deadline)
        name = self.name(mirror)
        port = self.published_ports([name]).get(name)
        if port is not None:
            self._record_ports({**recorded, mirror.upstream: port})

    def endpoint(self, port: int) -> str:
        return f"http://{BIND}:{port}"

    def await_ready(self, ports: dict[str, int], deadline: Deadline) -> StepWarning | None:
        """Wait for each cache's /v2/ (local: its remote is not asked)."""
        from pallet_dev.probe import wait_for_registry

        until = min(deadline.at, time.monotonic() + READY_SECONDS)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(
                zip(
                    ports,
                    pool.map(
                        lambda port: wait_for_registry(self.endpoint(port), until), ports.values()
                    ),
                )
            )
        silent = sorted(name for name, result in results.items() if not result.healthy)
        if not silent:
            return None
        return StepWarning(
            f"Pull-through cache{'s' if len(silent) > 1 else ''} {', '.join(silent)} did not "
            f"answer; pulls go to the upstream directly. See `docker logs {silent[0]}`."
        )

    def daemon_advice(self) -> str | None:
        """Whether the daemon sends docker.io pulls to the cache; the fix when it does not."""
        hub = next((m for m in self.config.mirrors if m.upstream == mirrors.DOCKER_HUB), None)
        if hub is None:
            return None
        port = self.recorded_ports().get(hub.upstream)
        if port is None:
            return None
        try:
            configured = self.docker.registry_mirrors()
        except PalletError:
            return None
        return mirrors.daemon_mirror_advice(configured, self.endpoint(port))

    # --- down, status -------------------------------------------------------------------
    def remove(self, *, clean: bool, steps: Steps) -> tuple[list[str], list[str]]:
        removed: list[str] = []
        kept: list[str] = []
        for name in sorted(self.existing()):
            with steps.step(f"Removing cache container {name}"):
                self.docker.remove(name)
            removed.append(f"container {name}")
        for volume in self.volumes():
            if clean:
                with steps.step(f"Removing cache volume {volume}"):
                    self.docker.volume_remove(volume)
                removed.append(f"volume {volume}")
            else:
                kept.append(f"volume {volume}")
        if clean:
            self.ports_file.unlink(missing_ok=True)
        return removed, kept

    def volumes(self) -> list[str]:
        """This environment's cache volumes (configured or not)."""
        prefix = f"{self.config.name}-mirror-"
        return self.docker.volumes_with_labels(self.labels(), prefix=prefix)

    def status(
        self, infos: Mapping[str, ContainerInfo], sizes: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        """Each configured cache: upstream, endpoint, state, entries, bytes on disk."""
        if not self.config.mirrors:
            return []
        rows: list[dict[str, Any]] = []
        for mirror in self.config.mirrors:
            name = self.name(mirror)
            info = infos.get(name)
            port = info.published.get(f"{CONTAINER_PORT}/tcp") if info is not None else None
            endpoint = self.endpoint(port) if port else None
            rows.append(
                {
                    "upstream": mirror.upstream,
                    "remote_url": mirror.remote_url,
                    "container": name,
                    "state": info.status if info is not None else "missing",
                    "endpoint": endpoint,
                    "entries": _entries(endpoint) if info is not None and info.running else None,
                    "size_bytes": sizes.get(self.volume(mirror)),
                    "hits": None,
                    "misses": None,
                }
            )
        return rows


def _entries(endpoint: str | None) -> int | None:
    """Repositories in a cache's catalog (None when it does not answer)."""
    from pallet_dev.probe import catalog

    names = catalog(endpoint) if endpoint else None
    return len(names) if names is not None else None


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"
