"""pallet-dev configuration: the model, where it is read from, and precedence.

Precedence, lowest to highest: model defaults < ``pallet-dev.yaml`` (the first one
found in the current folder or its parents, or ``--config FILE``) <
``PALLET_DEV_*`` environment variables < command-line flags.

Unknown keys are errors, so a typo never passes silently; every error names the
file and line (or the environment variable / flag) and the field path.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

# re-exported: the names predate config_sources (which settings.py reads without pydantic)
from pallet_dev.config_sources import ENV_FIELDS as ENV_FIELDS
from pallet_dev.config_sources import find_config_file as find_config_file
from pallet_dev import versions
from pallet_dev.chart.constants import DEFAULT_IMAGE
from pallet_dev.errors import ConfigError
from pallet_dev.yamlsource import read_yaml_mapping
from pallet_dev.config_base import ENV_VAR_PATTERN as ENV_VAR_PATTERN
from pallet_dev.config_base import Strict as _Strict
from pallet_dev.config_base import probe_url as probe_url
from pallet_dev.config_base import short_value as short_value
from pallet_dev.config_base import shown as _shown
from pallet_dev.config_base import usable_path as _usable_path
from pallet_dev.config_cluster import ClusterSettings as ClusterSettings
from pallet_dev.config_cluster import resolve_cluster as _resolve_cluster
from pallet_dev.config_mirrors import MirrorSettings as MirrorSettings
from pallet_dev.config_mirrors import default_mirrors as default_mirrors
from pallet_dev.config_mirrors import resolve_mirror_ca_files as _resolve_mirror_ca_files

# CNCF distribution, the release .ci/versions.env pins (the chart's appVersion too).
DEFAULT_REGISTRY_IMAGE = DEFAULT_IMAGE
# the pinned kind release's own default node image (versions.KIND_NODE_IMAGES)
DEFAULT_KIND_NODE_IMAGE = versions.KIND_NODE_IMAGES[versions.PINNED_KIND[:2]]
# A name must be valid as a kind cluster name, a Docker container/volume name and
# a DNS label: lower-case letters, digits and inner dashes; never a flag.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
# An image reference as Docker parses it (distribution's reference grammar): an optional
# registry host[:port], lower-case path components, an optional tag and/or digest. What
# Docker would refuse is refused here, naming the field, not later by `docker run`.
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (
    rf"^(?:(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?/)?"
    rf"{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
IMAGE_RULE = (
    "must be an image reference such as registry:3.1.2 or localhost:5000/team/app:1@sha256:"
    "<hex> (lower-case repository path, optional host[:port]/, :tag and @digest)"
)


class ServiceCheck(_Strict):
    """An extra endpoint `health` probes (a Pallet agent)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    url: str
    expect_status: int = Field(default=200, ge=100, le=599)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return probe_url(value)


class RegistrySettings(_Strict):
    image: str = Field(default=DEFAULT_REGISTRY_IMAGE, pattern=IMAGE_PATTERN)
    port: StrictInt = Field(default=5000, ge=1, le=65535)
    bind_address: str = "127.0.0.1"

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1") from None
        return value


class KindSettings(_Strict):
    node_image: str = Field(default=DEFAULT_KIND_NODE_IMAGE, pattern=IMAGE_PATTERN)


class ChartSettings(_Strict):
    """Extra Helm values for the kind backend (merged after the chart's dev values)."""

    values: list[str] = Field(default_factory=list)
    set: list[str] = Field(default_factory=list)

    @field_validator("set")
    @classmethod
    def _key_equals_value(cls, value: list[str]) -> list[str]:
        for item in value:
            key = item.split("=", 1)[0]
            if "=" not in item or not key.strip():
                raise ValueError(f"each entry is KEY=VALUE, as for --set; got {short_value(item)}")
        return value


# An agent's name: a DNS label short enough for `<env>-agent-<name>-<replica>` and
# Kubernetes object names.
AGENT_NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$"
# Kubernetes resource quantities: 128Mi, 1Gi, 500m, 0.5
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
# Variables pallet-dev sets in every agent; `env:` must not set them.
RESERVED_AGENT_ENV = ("PALLET_REGISTRY", "PALLET_AGENT", "PALLET_ENVIRONMENT")


class AgentBuild(_Strict):
    """How pallet-dev builds an agent's image (`docker build`)."""

    context: str = Field(min_length=1)  # relative to the config file's folder
    dockerfile: str = Field(default="Dockerfile", min_length=1)  # relative to the context
    target: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    args: dict[str, str] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def _arg_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not re.match(ENV_VAR_PATTERN, name)]
        if bad:
            raise ValueError(f"build arg names must be letters, digits and _; got {bad[0]!r}")
        return value


class AgentResources(_Strict):
    memory: str | None = Field(default=None, pattern=QUANTITY_PATTERN)
    cpu: str | None = Field(default=None, pattern=QUANTITY_PATTERN)


class AgentSettings(_Strict):
    """One Pallet agent that `up` builds (or takes ready), deploys and `health` probes."""

    name: str = Field(pattern=AGENT_NAME_PATTERN)
    build: AgentBuild | None = None
    image: str | None = Field(default=None, pattern=IMAGE_PATTERN)
    port: StrictInt = Field(default=8080, ge=1, le=65535)
    health: str = Field(default="/healthz", pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
    replicas: StrictInt = Field(default=1, ge=1, le=10)
    env: dict[str, str] = Field(default_factory=dict)
    resources: AgentResources = Field(default_factory=AgentResources)
    # Docker backend: the host port of the first replica (default: a free one, kept)
    host_port: StrictInt | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _build_or_image(self) -> AgentSettings:
        if (self.build is None) == (self.image is None):
            raise ValueError(
                "give exactly one of build (pallet-dev builds the image) or image "
                "(a ready image)"
            )
        return self

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(ENV_VAR_PATTERN, name):
                raise ValueError(f"environment variable names are letters, digits and _; {name!r}")
            if name in RESERVED_AGENT_ENV:
                raise ValueError(f"{name} is set by pallet-dev; remove it from env")
        return value


def _check_unique(names: list[str], what: str) -> None:
    """`health` reports by name: names are unique, and 'registry' is the registry's."""
    if "registry" in names:
        raise ValueError("the name 'registry' is reserved for the registry itself")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(duplicates)}")


class Config(_Strict):
    name: str = Field(default="pallet-dev", pattern=NAME_PATTERN)
    backend: Literal["auto", "kind", "docker", "cluster"] = "auto"
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    services: list[ServiceCheck] = Field(default_factory=list)
    kind: KindSettings = Field(default_factory=KindSettings)
    chart: ChartSettings = Field(default_factory=ChartSettings)
    agents: list[AgentSettings] = Field(default_factory=list)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    mirrors: list[MirrorSettings] = Field(default_factory=default_mirrors)

    @field_validator("mirrors")
    @classmethod
    def _unique_mirrors(cls, value: list[MirrorSettings]) -> list[MirrorSettings]:
        upstreams = [mirror.upstream for mirror in value]
        repeated = sorted({name for name in upstreams if upstreams.count(name) > 1})
        if repeated:
            raise ValueError(
                f"each upstream has one mirror; repeated: {', '.join(repeated)} "
                "(remove the extra entries)"
            )
        from pallet_dev.mirrors import mirror_slug

        slugs = [mirror_slug(name) for name in upstreams]
        clash = sorted({u for u, s in zip(upstreams, slugs) if slugs.count(s) > 1})
        if clash:
            raise ValueError(
                f"upstreams {', '.join(clash)} give the same cache name; keep one of them"
            )
        return value

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: list[AgentSettings]) -> list[AgentSettings]:
        _check_unique([agent.name for agent in value], "agent")
        return value

    @model_validator(mode="after")
    def _agents_and_services_apart(self) -> Config:
        clash = sorted({a.name for a in self.agents} & {s.name for s in self.services})
        if clash:
            raise ValueError(
                f"{clash[0]!r} is both an agent and a service; `health` needs distinct names"
            )
        return self

    @field_validator("services")
    @classmethod
    def _unique_names(cls, value: list[ServiceCheck]) -> list[ServiceCheck]:
        _check_unique([service.name for service in value], "service")
        return value


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


# What a pattern-checked field accepts, in words (the regex itself helps no one), by its
# path without list indexes.
_PATTERN_RULES: dict[tuple[str, ...], str] = {
    ("name",): "must be 1-40 lower-case letters, digits or inner dashes "
    "(a valid kind cluster and container name)",
    ("agents", "name"): "must be a DNS label: 1-30 lower-case letters, digits or inner dashes, "
    "starting with a letter",
    ("registry", "image"): IMAGE_RULE,
    ("kind", "node_image"): IMAGE_RULE,
    ("agents", "image"): IMAGE_RULE,
    ("services", "name"): "must be 1-63 letters, digits, '_', '.' or '-', starting with a "
    "letter or digit",
}


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see README.md for the keys)"
    if kind == "literal_error":
        return str(error.get("msg", "")).replace("Input should be", "must be")
    if kind == "string_pattern_mismatch":
        described = _PATTERN_RULES.get(tuple(p for p in error.get("loc", ()) if isinstance(p, str)))
        if described:
            return described
    message = str(error.get("msg", "invalid value"))
    message = message.replace("Value error, ", "").replace("Input should be", "must be")
    return message


def _format_errors(exc: ValidationError, origin: dict[tuple[str, ...], str]) -> str:
    """One sentence per problem: where, field path, what is wrong, the bad value."""
    sentences = []
    for error in exc.errors():
        loc = tuple(str(part) if not isinstance(part, int) else part for part in error["loc"])
        path = ".".join(str(part) for part in loc) or "(top level)"
        where = origin.get(tuple(str(p) for p in loc))
        if where is None:
            for size in range(len(loc) - 1, -1, -1):
                where = origin.get(tuple(str(p) for p in loc[:size]))
                if where:
                    break
        shown = error.get("input")
        value = "" if error["type"] == "extra_forbidden" else f" (got {short_value(shown)})"
        sentences.append(f"{where or 'config'}: {path}: {_describe(error)}{value}.")
    return " ".join(sentences)


def load_config(
    config_file: Path | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
) -> tuple[Config, Path | None]:
    """Build the effective configuration; return it with the file it came from."""
    environ = os.environ if environ is None else environ
    path = config_file if config_file is not None else find_config_file(cwd or Path.cwd())
    data: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    if path is not None:
        source = read_yaml_mapping(
            path, what="config file", keys="name, backend, registry, ...", flag="--config"
        )
        data = source.data
        _record_origins(data, (), origin, source.locate)
    for var, field_path in ENV_FIELDS.items():
        if var in environ:
            _set_path(data, field_path, _env_value(field_path, environ[var]))
            origin[field_path] = f"environment variable {var}"
    for field_path, value in (overrides or {}).items():
        if value is None:
            continue
        _set_path(data, field_path, value)
        origin[field_path] = f"--{field_path[-1].replace('_', '-')}"
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None
    if config.backend == "cluster":
        config = _resolve_cluster(config, origin, environ)
    base = path.resolve().parent if path is not None else (cwd or Path.cwd()).resolve()
    if config.agents:
        config = _resolve_agent_contexts(config, base, origin)
    if any(mirror.ca_file for mirror in config.mirrors):
        config = _resolve_mirror_ca_files(config, base, origin)
    return config, path


# fields whose environment variable holds a whole number (plain digits only: no "5_001",
# "5001.0" or "+5001", which int() would take)
_INT_FIELDS = {("registry", "port")}


def _env_value(field_path: tuple[str, ...], text: str) -> object:
    if field_path in _INT_FIELDS and re.fullmatch(r"[0-9]{1,6}", text):
        return int(text)
    return text


def _resolve_agent_contexts(
    config: Config, base: Path, origin: Mapping[tuple[str, ...], str]
) -> Config:
    """Build contexts become absolute folders (relative ones to the config file's folder).

    A context or Dockerfile that does not exist is a ConfigError naming file:line; a
    context outside the config folder's tree is accepted only when it exists.
    """
    agents: list[AgentSettings] = []
    for index, agent in enumerate(config.agents):
        build = agent.build
        if build is None:
            agents.append(agent)
            continue
        where = origin.get(("agents", str(index), "build", "context")) or "config"
        field = f"agents.{index}.build.context"
        context_hint = (
            "Give the folder that holds the agent's Dockerfile, relative to pallet-dev.yaml."
        )
        context = _usable_path(lambda: base / Path(build.context).expanduser(), Path.is_dir)
        if isinstance(context, str):
            raise ConfigError(
                f"{where}: {field}: the build context {short_value(build.context)} of agent "
                f"'{agent.name}' is not a usable path: {context}.",
                hint=context_hint,
            )
        outside = base not in (context, *context.parents)
        if not context.is_dir():
            extra = f" (outside {base})" if outside else ""
            raise ConfigError(
                f"{where}: {field}: the build context {short_value(build.context)} of agent "
                f"'{agent.name}' is not a folder{extra}: {_shown(context)} does not exist.",
                hint=context_hint,
            )
        dockerfile = _usable_path(lambda: context / build.dockerfile, Path.is_file)
        if isinstance(dockerfile, str) or not dockerfile.is_file():
            where = origin.get(("agents", str(index), "build", "dockerfile")) or where
            problem = (
                f"has a Dockerfile path {short_value(build.dockerfile)} that is not usable: "
                f"{dockerfile}"
                if isinstance(dockerfile, str)
                else f"has no Dockerfile at {_shown(dockerfile)}"
            )
            raise ConfigError(
                f"{where}: agents.{index}.build.dockerfile: agent '{agent.name}' {problem}.",
                hint="Create it, or set build.dockerfile to its path relative to the context.",
            )
        resolved = build.model_copy(update={"context": str(context)})
        agents.append(agent.model_copy(update={"build": resolved}))
    return config.model_copy(update={"agents": agents})


def _record_origins(
    data: Any,
    prefix: tuple[str, ...],
    origin: dict[tuple[str, ...], str],
    locate: Any,
) -> None:
    origin[prefix] = locate(prefix)
    if isinstance(data, dict):
        for key, value in data.items():
            _record_origins(value, (*prefix, str(key)), origin, locate)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _record_origins(value, (*prefix, str(index)), origin, locate)
