"""What the fast paths need from the validated config, kept as JSON.

Validating the config imports pydantic and yaml, and the Typer CLI imports pydantic
too: about 130 ms, most of `health`'s 200 ms budget and of what `up` adds to a bare
`docker run`. So every successful :meth:`AppContext.load_config` (without flag
overrides) stores the few settings `health` and the Docker `up` use, keyed by
everything they derive from: the config file (path, size, mtime, inode), the
PALLET_DEV_* configuration variables and the pallet-dev version. The fast paths read
them back only when that key still matches; otherwise the normal path runs, which
validates (reporting any error as usual) and stores a fresh snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev import __version__
from pallet_dev.config_sources import (
    ENV_FIELDS,
    MAX_WAIT_SECONDS,
    container_name_for,
    find_config_file,
    is_loopback_address,
    registry_url_for,
    volume_name_for,
)
from pallet_dev.paths import Paths

if TYPE_CHECKING:
    from pallet_dev.config import Config


@dataclass(frozen=True)
class ServiceEndpoint:
    name: str
    url: str
    expect_status: int = 200


@dataclass(frozen=True)
class RegistrySnapshot:
    image: str
    port: int
    bind_address: str

    @property
    def is_loopback(self) -> bool:
        return is_loopback_address(self.bind_address)


@dataclass(frozen=True)
class ConfigSnapshot:
    """The part of the validated config the fast paths (`health`, Docker `up`) use.

    It has the same attribute names as :class:`pallet_dev.config.Config` for what it
    carries, so the Docker backend runs on either (backends.base.EnvironmentView).
    """

    name: str
    backend: str
    registry: RegistrySnapshot
    services: tuple[ServiceEndpoint, ...] = ()
    # configured agents (the Docker `up` fast path does not deploy agents: it steps aside)
    agent_names: tuple[str, ...] = ()

    @property
    def registry_url(self) -> str:
        return registry_url_for(self.registry.bind_address, self.registry.port)

    @property
    def container_name(self) -> str:
        return container_name_for(self.name)

    @property
    def volume_name(self) -> str:
        return volume_name_for(self.name)

    @classmethod
    def from_config(cls, config: Config) -> ConfigSnapshot:
        registry = config.registry
        return cls(
            name=config.name,
            backend=config.backend,
            registry=RegistrySnapshot(registry.image, registry.port, registry.bind_address),
            services=tuple(
                ServiceEndpoint(s.name, s.url, s.expect_status) for s in config.services
            ),
            agent_names=tuple(agent.name for agent in config.agents),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "registry": {
                "image": self.registry.image,
                "port": self.registry.port,
                "bind_address": self.registry.bind_address,
            },
            "services": [
                {"name": s.name, "url": s.url, "expect_status": s.expect_status}
                for s in self.services
            ],
            "agent_names": list(self.agent_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigSnapshot:
        registry = data["registry"]
        return cls(
            name=str(data["name"]),
            backend=str(data["backend"]),
            registry=RegistrySnapshot(
                str(registry["image"]), int(registry["port"]), str(registry["bind_address"])
            ),
            services=tuple(
                ServiceEndpoint(str(s["name"]), str(s["url"]), int(s["expect_status"]))
                for s in data["services"]
            ),
            agent_names=tuple(str(name) for name in data.get("agent_names") or ()),
        )


def inputs_key(
    config_file: Path | None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the settings derive from; compute it before loading the config."""
    environ = os.environ if environ is None else environ
    path = config_file if config_file is not None else find_config_file(cwd or Path.cwd())
    stat: list[int] | None = None
    if path is not None:
        try:
            info = path.stat()
            stat = [info.st_size, info.st_mtime_ns, info.st_ino]
        except OSError:
            stat = None
    return {
        "version": __version__,
        "file": str(path.resolve()) if path is not None else None,
        "stat": stat,
        "env": {var: environ.get(var) for var in sorted(ENV_FIELDS)},
    }


def _snapshot_file(paths: Paths, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return paths.state_dir / "config-snapshots" / f"{digest}.json"


def read(paths: Paths, key: Mapping[str, Any]) -> ConfigSnapshot | None:
    """The stored settings for exactly these inputs, or None."""
    try:
        data = json.loads(_snapshot_file(paths, key).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        return ConfigSnapshot.from_dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(paths: Paths, key: Mapping[str, Any], settings: ConfigSnapshot) -> None:
    """Store the settings (atomically); a snapshot that cannot be written only costs speed."""
    path = _snapshot_file(paths, key)
    payload = json.dumps({"key": key, "settings": settings.to_dict()}, sort_keys=True)
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == payload:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(payload, encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass


def positive_seconds(text: str, maximum: float = MAX_WAIT_SECONDS) -> float | None:
    """A fast path's `--timeout` value, or None when the full CLI must judge it."""
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if 0 < seconds <= maximum else None
