"""What `health` needs from the validated config, kept as JSON for its fast path.

Validating the config imports pydantic and yaml, and the Typer CLI imports pydantic
too: together about half of `health`'s 200 ms budget. So every successful
:meth:`AppContext.load_config` (without flag overrides) stores the few settings
`health` uses, keyed by everything they derive from: the config file (path, size,
mtime, inode), the PALLET_DEV_* configuration variables and the pallet-dev version.
`pallet-dev health` reads them back only when that key still matches; otherwise it
takes the normal path, which validates (reporting any error as usual) and stores a
fresh snapshot.
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
from pallet_dev.config_sources import ENV_FIELDS, find_config_file
from pallet_dev.paths import Paths

if TYPE_CHECKING:
    from pallet_dev.config import Config


@dataclass(frozen=True)
class ServiceEndpoint:
    name: str
    url: str
    expect_status: int = 200


@dataclass(frozen=True)
class HealthSettings:
    """The part of the config `health` uses."""

    name: str
    backend: str
    registry_url: str
    services: tuple[ServiceEndpoint, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> HealthSettings:
        return cls(
            name=config.name,
            backend=config.backend,
            registry_url=config.registry_url,
            services=tuple(
                ServiceEndpoint(s.name, s.url, s.expect_status) for s in config.services
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "registry_url": self.registry_url,
            "services": [
                {"name": s.name, "url": s.url, "expect_status": s.expect_status}
                for s in self.services
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthSettings:
        return cls(
            name=str(data["name"]),
            backend=str(data["backend"]),
            registry_url=str(data["registry_url"]),
            services=tuple(
                ServiceEndpoint(str(s["name"]), str(s["url"]), int(s["expect_status"]))
                for s in data["services"]
            ),
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


def read(paths: Paths, key: Mapping[str, Any]) -> HealthSettings | None:
    """The stored settings for exactly these inputs, or None."""
    try:
        data = json.loads(_snapshot_file(paths, key).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        return HealthSettings.from_dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(paths: Paths, key: Mapping[str, Any], settings: HealthSettings) -> None:
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
