"""What the docker CLI prints, parsed, and what a container is given.

The data types of :mod:`pallet_dev.tools.docker`: `docker info`/`version`/`inspect` JSON
as typed values, the daemon errors told apart from stderr, and a container's spec as
`docker run` argv. No subprocess here; the adapter runs the commands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pallet_dev.errors import DaemonUnavailable, OperationFailed, PalletError
from pallet_dev.versions import ToolVersion


def docker_json(text: str, command: str, empty: str) -> Any:
    """The JSON a `--format '{{json ...}}'` call printed (``empty`` when it printed nothing)."""
    try:
        return json.loads(text.strip() or empty)
    except json.JSONDecodeError:
        raise OperationFailed(
            f"`{command}` printed unexpected output: {text.strip()[:200]!r}.",
            hint="Check that `docker` is the Docker CLI.",
        ) from None


# One `docker info` call with the facts the preflights and doctor need (tools' JSON, no text)
HOST_INFO_TEMPLATE = (
    '{"cgroup":{{json .CgroupVersion}},"security":{{json .SecurityOptions}},'
    '"driver_status":{{json .DriverStatus}},"root_dir":{{json .DockerRootDir}}}'
)
CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"


@dataclass(frozen=True)
class HostInfo:
    """What `docker info` says about the daemon's host (cgroup "1"/"2", "" when unknown)."""

    cgroup_version: str = ""
    rootless: bool = False
    containerd_store: bool = False
    root_dir: str = ""

    @classmethod
    def from_json(cls, text: str) -> HostInfo:
        data = docker_json(text, "docker info", "{}")
        if not isinstance(data, dict):
            data = {}
        security = data.get("security") or []
        status = data.get("driver_status") or []
        return cls(
            cgroup_version=str(data.get("cgroup") or ""),
            rootless=any("name=rootless" in str(item) for item in security),
            containerd_store=any(
                isinstance(pair, list) and len(pair) == 2 and pair[1] == CONTAINERD_SNAPSHOTTER
                for pair in status
            ),
            root_dir=str(data.get("root_dir") or ""),
        )


@dataclass(frozen=True)
class DockerVersion:
    """`docker version`: the CLI's version, and the daemon's or why it did not answer."""

    client: ToolVersion | None
    server: ToolVersion | PalletError  # the daemon's version, or why it did not answer


def classify_daemon_error(stderr: str) -> DaemonUnavailable | None:
    """Tell "daemon not running" from "permission denied" from the CLI's stderr."""
    text = stderr.lower()
    if "permission denied" in text:
        return DaemonUnavailable(
            "Permission denied on the Docker socket.",
            hint="Add yourself to the 'docker' group (`sudo usermod -aG docker $USER`, then log "
            "in again) or use a rootless Docker context.",
        )
    if "cannot connect to the docker daemon" in text or "is the docker daemon running" in text:
        return DaemonUnavailable(
            "The Docker daemon is not running.",
            hint="Start Docker Desktop, or `sudo systemctl start docker` on Linux, then retry.",
        )
    if "error during connect" in text or "connection refused" in text:
        return DaemonUnavailable(
            "Cannot reach the Docker daemon.",
            hint="Check DOCKER_HOST / `docker context ls`, and that Docker is running.",
        )
    return None


def names_registry(output: str, image: str) -> bool:
    """Whether Docker's error text names ``image``'s registry.

    Docker writes ``localhost:5000`` as ``127.0.0.1:5000`` (or ``[::1]:5000``) in its
    errors, so a registry with a port is recognised by the port alone.
    """
    host = image.split("/", 1)[0]
    _, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return re.search(rf":{port}\b", output) is not None
    return host in output


@dataclass(frozen=True)
class PortBinding:
    host_ip: str
    host_port: int
    container_port: str


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # created | running | paused | restarting | exited | dead
    image: str
    image_id: str
    labels: Mapping[str, str]
    ports: tuple[PortBinding, ...]
    mounts: tuple[Mapping[str, Any], ...]
    restart_count: int
    started_at: str
    env: tuple[str, ...] = field(default_factory=tuple)
    networks: tuple[str, ...] = field(default_factory=tuple)
    # container port ("8080/tcp") -> the host port Docker actually bound
    published: Mapping[str, int] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ContainerInfo:
        config = data.get("Config") or {}
        state = data.get("State") or {}
        host_config = data.get("HostConfig") or {}
        ports: list[PortBinding] = []
        for container_port, bindings in (host_config.get("PortBindings") or {}).items():
            for binding in bindings or []:
                host_port = binding.get("HostPort") or "0"
                ports.append(
                    PortBinding(binding.get("HostIp") or "", int(host_port), container_port)
                )
        network = data.get("NetworkSettings") or {}
        published: dict[str, int] = {}
        for container_port, bindings in (network.get("Ports") or {}).items():
            for binding in bindings or []:
                if str(binding.get("HostPort") or "").isdigit():
                    published.setdefault(container_port, int(binding["HostPort"]))
        return cls(
            id=str(data.get("Id", "")),
            name=str(data.get("Name", "")).lstrip("/"),
            status=str(state.get("Status", "unknown")),
            image=str(config.get("Image", "")),
            image_id=str(data.get("Image", "")),
            labels=dict(config.get("Labels") or {}),
            ports=tuple(ports),
            mounts=tuple(data.get("Mounts") or ()),
            restart_count=int(data.get("RestartCount") or 0),
            started_at=str(state.get("StartedAt", "")),
            env=tuple(config.get("Env") or ()),
            networks=tuple(sorted(network.get("Networks") or {})),
            published=published,
        )

    def host_port(self, container_port: int) -> int | None:
        """The host port a container port is published on (after Docker chose one)."""
        return self.published.get(f"{container_port}/tcp")


@dataclass(frozen=True)
class VolumeMount:
    """A named volume; `docker run` creates it (with these labels) when it does not exist."""

    name: str
    target: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def mount_arg(self) -> str:
        parts = ["type=volume", f"src={self.name}", f"dst={self.target}"]
        parts += [f"volume-label={key}={value}" for key, value in sorted(self.labels.items())]
        return ",".join(parts)


@dataclass(frozen=True)
class ContainerSpec:
    """Everything `docker run` needs for the registry container."""

    name: str
    image: str
    labels: Mapping[str, str]
    publish: Sequence[str]  # "127.0.0.1:5000:5000"
    volumes: Sequence[VolumeMount]
    env: Mapping[str, str]
    restart: str = "unless-stopped"
    network: str | None = None
    # resource limits and the like, before the image (e.g. ["--memory", "128m"])
    extra: Sequence[str] = ()

    def run_argv(self) -> list[str]:
        # --pull never: a missing image is reported, and pulled (with progress) on purpose
        argv = ["docker", "run", "--detach", "--pull", "never", "--name", self.name]
        argv += ["--restart", self.restart]
        for key, value in sorted(self.labels.items()):
            argv += ["--label", f"{key}={value}"]
        for publish in self.publish:
            argv += ["--publish", publish]
        for volume in self.volumes:
            argv += ["--mount", volume.mount_arg()]
        for key, value in sorted(self.env.items()):
            argv += ["--env", f"{key}={value}"]
        if self.network:
            argv += ["--network", self.network]
        argv += list(self.extra)
        argv.append(self.image)
        return argv


def json_list(out: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise OperationFailed(f"`{what}` printed output that is not JSON: {out[:200]!r}.") from None
    if not isinstance(data, list):
        raise OperationFailed(f"`{what}` printed JSON that is not a list.")
    return data


_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "kB": 1000}


def parse_size(text: str) -> int | None:
    """Docker's human sizes ("12.3MB", "0B") to bytes."""
    text = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * _UNITS[unit])
            except ValueError:
                return None
    return None
