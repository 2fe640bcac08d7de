"""The docker CLI: argv builders and parsers of its JSON output.

Only ``--format '{{json .}}'`` / ``inspect`` JSON is parsed, never table columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pallet_dev.errors import CommandFailed, DaemonUnavailable, OperationFailed
from pallet_dev.runner import Runner

LABEL_MANAGED = "dev.pallet.managed"
LABEL_ENV = "dev.pallet.environment"
LABEL_SPEC = "dev.pallet.spec-hash"

_NOT_FOUND_MARKERS = ("no such container", "no such image", "no such volume", "no such object")


class ContainerExists(Exception):
    """`docker run` found the name taken (internal: the backend inspects and reconciles)."""


class ImageMissing(Exception):
    """`docker run --pull never` found no local image (internal: the backend pulls)."""

    def __init__(self, image: str) -> None:
        super().__init__(image)
        self.image = image


def _not_found(exc: CommandFailed) -> bool:
    text = exc.stderr.lower()
    return any(marker in text for marker in _NOT_FOUND_MARKERS)


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
        )


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
        argv.append(self.image)
        return argv


class Docker:
    """Adapter over the docker CLI; every call goes through the runner."""

    def __init__(self, runner: Runner, *, timeout: float = 60.0) -> None:
        self.runner = runner
        self.timeout = timeout

    def _run(self, argv: list[str], *, timeout: float | None = None, step: str = "") -> str:
        try:
            return self.runner.run(argv, timeout=timeout or self.timeout, step=step).stdout
        except CommandFailed as exc:
            daemon = classify_daemon_error(exc.stderr)
            if daemon is not None:
                raise daemon from None
            raise

    def ping(self) -> str:
        """The server version; DaemonUnavailable when the daemon cannot be reached."""
        out = self._run(
            ["docker", "version", "--format", "{{json .Server.Version}}"],
            timeout=min(self.timeout, 20.0),
            step="docker version",
        )
        try:
            version = json.loads(out.strip() or '""')
        except json.JSONDecodeError:
            raise OperationFailed(
                f"`docker version` printed unexpected output: {out.strip()[:200]!r}.",
                hint="Check that `docker` is the Docker CLI.",
            ) from None
        if not version:
            raise DaemonUnavailable(
                "The Docker daemon is not running.",
                hint="Start Docker Desktop, or `sudo systemctl start docker` on Linux.",
            )
        return str(version)

    def inspect_container(self, name: str) -> ContainerInfo | None:
        try:
            out = self._run(["docker", "container", "inspect", name], step="inspect container")
        except CommandFailed as exc:
            if _not_found(exc):
                return None
            raise
        items = _json_list(out, "docker container inspect")
        return ContainerInfo.from_inspect(items[0]) if items else None

    def image_id(self, image: str) -> str | None:
        try:
            out = self._run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", image], step="inspect image"
            )
        except CommandFailed as exc:
            if _not_found(exc):
                return None
            raise
        return out.strip() or None

    def pull(self, image: str, *, timeout: float) -> None:
        """Pull with the CLI's own progress on stderr."""
        try:
            self.runner.run(
                ["docker", "pull", image], timeout=timeout, stream=True, step="pull image"
            )
        except CommandFailed as exc:
            raise OperationFailed(
                f"Cannot pull {image} and it is not present locally.",
                hint="Check your network or proxy (`docker pull` must work), or load the image "
                "with `docker load`, or set registry.image to an image you have.",
            ) from exc

    def volume_exists(self, name: str) -> bool:
        try:
            self._run(["docker", "volume", "inspect", name], step="inspect volume")
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def volume_remove(self, name: str) -> bool:
        try:
            self._run(["docker", "volume", "rm", name], step="remove volume")
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def run(self, spec: ContainerSpec) -> str:
        """`docker run`; ImageMissing when the image is not present locally,
        ContainerExists when the name is taken (nothing was created then)."""
        try:
            return self._run(spec.run_argv(), step="run container").strip()
        except CommandFailed as exc:
            text = exc.stderr.lower()
            if "no such image" in text:
                raise ImageMissing(spec.image) from None
            if "is already in use by container" in text or "conflict. the container name" in text:
                raise ContainerExists(spec.name) from None
            raise

    def start(self, name: str) -> None:
        self._run(["docker", "container", "start", name], step="start container")

    def remove(self, name: str) -> bool:
        try:
            self._run(["docker", "container", "rm", "--force", name], step="remove container")
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def volume_size_bytes(self, name: str) -> int | None:
        """Size of a volume from `docker system df -v` (None when unknown)."""
        out = self._run(
            ["docker", "system", "df", "--verbose", "--format", "{{json .Volumes}}"],
            timeout=60,
            step="disk usage",
        )
        try:
            volumes = json.loads(out.strip() or "[]")
        except json.JSONDecodeError:
            return None
        for volume in volumes or []:
            if volume.get("Name") == name:
                return _parse_size(str(volume.get("Size", "")))
        return None


def _json_list(out: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise OperationFailed(f"`{what}` printed output that is not JSON: {out[:200]!r}.") from None
    if not isinstance(data, list):
        raise OperationFailed(f"`{what}` printed JSON that is not a list.")
    return data


_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "kB": 1000}


def _parse_size(text: str) -> int | None:
    """Docker's human sizes ("12.3MB", "0B") to bytes."""
    text = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * _UNITS[unit])
            except ValueError:
                return None
    return None
