"""The validated settings every command and backend takes, and the one place they load.

:class:`Settings` holds all of the configuration (registry, services, kind, chart,
agents) as frozen dataclasses, plus the names derived from it; it imports nothing
heavy. :func:`load_settings` returns it either from a cache or by validating:
validating imports pydantic and yaml (config.py), about 130 ms, most of `health`'s
budget. So every validation stores its result as JSON, keyed by everything the
settings derive from: the config file (path, size, mtime, inode), the PALLET_DEV_*
configuration variables, the flag overrides and the pallet-dev version. A run whose
key matches reads that copy back; any change validates again (and reports any error
as usual).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev import __version__
from pallet_dev.config_sources import (
    ENV_FIELDS,
    container_name_for,
    find_config_file,
    is_loopback_address,
    registry_url_for,
    volume_name_for,
)
from pallet_dev.paths import Paths

if TYPE_CHECKING:
    from pallet_dev.config import Config

# Field paths a command-line flag may set (`up --backend`, `up --port`) to their values.
Overrides = Mapping[tuple[str, ...], Any]


@dataclass(frozen=True)
class RegistrySettings:
    image: str
    port: int
    bind_address: str

    @property
    def is_loopback(self) -> bool:
        return is_loopback_address(self.bind_address)


@dataclass(frozen=True)
class ServiceCheck:
    """An extra endpoint `health` probes."""

    name: str
    url: str
    expect_status: int = 200


@dataclass(frozen=True)
class KindSettings:
    node_image: str


@dataclass(frozen=True)
class ChartSettings:
    """Extra Helm values for the kind backend (files relative to the config's folder)."""

    values: tuple[str, ...] = ()
    set: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentBuild:
    context: str  # an absolute folder (config.py resolves it)
    dockerfile: str = "Dockerfile"  # relative to the context
    target: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentResources:
    memory: str | None = None
    cpu: str | None = None


@dataclass(frozen=True)
class AgentSettings:
    """One Pallet agent: built (``build``) or taken ready (``image``), exactly one."""

    name: str
    build: AgentBuild | None = None
    image: str | None = None
    port: int = 8080
    health: str = "/healthz"
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    resources: AgentResources = field(default_factory=AgentResources)
    host_port: int | None = None  # Docker backend: the first replica's host port


@dataclass(frozen=True)
class ClusterSettings:
    """`backend: cluster` (config.py checks and expands it when that backend is chosen)."""

    context: str | None = None
    allowed_contexts: tuple[str, ...] = ()
    namespace: str = "pallet-${USER}"  # expanded: a DNS label
    registry: str | None = None  # [scheme://]host[:port][/path]
    pull_secret: str | None = None
    create_pull_secret: bool = False
    user: str | None = None  # the folder of the agents' images under `registry`


@dataclass(frozen=True)
class MirrorSettings:
    """One pull-through cache (config.py says what is valid; mirrors.py what it runs)."""

    upstream: str
    remote_url: str
    username_env: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # an absolute path (config.py resolves it)


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one environment (config.py says what is valid)."""

    name: str
    backend: str
    registry: RegistrySettings
    kind: KindSettings
    services: tuple[ServiceCheck, ...] = ()
    chart: ChartSettings = field(default_factory=ChartSettings)
    agents: tuple[AgentSettings, ...] = ()
    config_file: Path | None = None  # the pallet-dev.yaml it was read from, if any
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    mirrors: tuple[MirrorSettings, ...] = ()  # the pull-through caches (config default: four)

    # names derived from the environment name, used by every backend (config_sources)
    @property
    def container_name(self) -> str:
        return container_name_for(self.name)

    @property
    def volume_name(self) -> str:
        return volume_name_for(self.name)

    @property
    def kube_context(self) -> str:
        from pallet_dev.tools.kind import kube_context_for

        return kube_context_for(self.name)

    @property
    def registry_url(self) -> str:
        return registry_url_for(self.registry.bind_address, self.registry.port)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config_file"] = str(self.config_file) if self.config_file else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """From :meth:`to_dict`, or from the validated model's ``model_dump()``."""
        return cls(
            name=str(data["name"]),
            backend=str(data["backend"]),
            registry=RegistrySettings(**data["registry"]),
            kind=KindSettings(**data["kind"]),
            services=tuple(ServiceCheck(**service) for service in data["services"]),
            chart=ChartSettings(tuple(data["chart"]["values"]), tuple(data["chart"]["set"])),
            agents=tuple(_agent(agent) for agent in data["agents"]),
            config_file=Path(data["config_file"]) if data.get("config_file") else None,
            cluster=_cluster(data.get("cluster") or {}),
            mirrors=tuple(MirrorSettings(**mirror) for mirror in data["mirrors"]),
        )

    def missing_build_folder(self) -> bool:
        """Whether an agent's build context or Dockerfile is gone since validation."""
        for agent in self.agents:
            if agent.build is not None:
                context = Path(agent.build.context)
                if not context.is_dir() or not (context / agent.build.dockerfile).is_file():
                    return True
        return False


def _agent(data: Mapping[str, Any]) -> AgentSettings:
    build = data.get("build")
    return AgentSettings(
        **{
            **data,
            "build": AgentBuild(**build) if build is not None else None,
            "resources": AgentResources(**data["resources"]),
        }
    )


def _cluster(data: Mapping[str, Any]) -> ClusterSettings:
    return ClusterSettings(
        **{**data, "allowed_contexts": tuple(data.get("allowed_contexts") or ())}
    )


def from_config(config: Config, config_file: Path | None = None) -> Settings:
    """The settings of a validated :class:`pallet_dev.config.Config`."""
    return Settings.from_dict({**config.model_dump(), "config_file": config_file})


def load_settings(
    config_file: Path | None,
    paths: Paths,
    *,
    overrides: Overrides | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, bool]:
    """The effective settings, and whether they came from the cache.

    A cached copy is used only when its key matches exactly and the agents' build
    folders still exist (their absence is a config error validation reports).
    Otherwise: validate (ConfigError, exit 2, on a bad value) and store the result.
    """
    given = {path: value for path, value in (overrides or {}).items() if value is not None}
    key = inputs_key(config_file, cwd=cwd, environ=environ, overrides=given)  # before reading
    cached = read_cached(paths, key)
    if cached is not None and not cached.missing_build_folder():
        return cached, True
    from pallet_dev.config import load_config

    config, path = load_config(config_file, cwd=cwd, environ=environ, overrides=given)
    settings = from_config(config, path)
    store(paths, key, settings)
    return settings, False


def inputs_key(
    config_file: Path | None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
) -> dict[str, Any]:
    """Everything the settings derive from; computed before the file is read (never stale)."""
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
        # cluster.namespace and the image folder expand ${USER}
        "user": environ.get("USER") or environ.get("LOGNAME"),
        "overrides": {".".join(path): value for path, value in sorted((overrides or {}).items())},
    }


def _cache_file(paths: Paths, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return paths.state_dir / "config-snapshots" / f"{digest}.json"


def read_cached(paths: Paths, key: Mapping[str, Any]) -> Settings | None:
    """The stored settings for exactly these inputs, or None."""
    try:
        data = json.loads(_cache_file(paths, key).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        return Settings.from_dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(paths: Paths, key: Mapping[str, Any], settings: Settings) -> None:
    """Store the settings (atomically); a copy that cannot be written only costs speed."""
    path = _cache_file(paths, key)
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
