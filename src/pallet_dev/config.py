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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceCheck(_Strict):
    """An extra endpoint `health` probes (a Pallet agent)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    url: str
    expect_status: int = Field(default=200, ge=100, le=599)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return probe_url(value)


def probe_url(value: str) -> str:
    """An http(s) URL `health` can always probe: ASCII, a valid host and port."""
    from urllib.parse import urlsplit

    fix = "must be an http:// or https:// URL such as http://localhost:8080/healthz"
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value) or not value.isascii():
        raise ValueError(f"{fix} (ASCII, no spaces; percent-encode other characters)")
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{fix} ({exc})") from None
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{fix} (no host)")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{fix} (bad IPv6 address {host!r:.60})") from None
    elif any(not label for label in host.split(".")[:-1]) or len(host) > 253:
        raise ValueError(f"{fix} (bad host name {host!r:.60})")
    if port == 0:
        raise ValueError(f"{fix} (port 0)")
    return value


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
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
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


# a Kubernetes object name (DNS subdomain) and a namespace (DNS label)
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# a kube context's name: anything printable (EKS names hold ':' and '/')
CONTEXT_PATTERN = r"^[^\s\x00-\x1f]{1,253}$"
# <host>[:port][/path], optionally after http:// or https:// (the scheme of its API)
REGISTRY_PATTERN = (
    r"^(https?://)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?" r"(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$"
)
# one path component of an image repository (the user's folder in the team registry)
REPOSITORY_COMPONENT = re.compile(r"^[a-z0-9]+([._-]+[a-z0-9]+)*$")
DEFAULT_PULL_SECRET = "pallet-dev-pull"


class ClusterSettings(_Strict):
    """`backend: cluster`: a namespace of an existing cluster and the team's registry."""

    context: str | None = Field(default=None, pattern=CONTEXT_PATTERN)
    allowed_contexts: list[str] = Field(default_factory=list)
    namespace: str = Field(default="pallet-${USER}", min_length=1, max_length=200)
    registry: str | None = Field(default=None, pattern=REGISTRY_PATTERN, max_length=255)
    pull_secret: str | None = Field(default=None, pattern=K8S_NAME_PATTERN)
    create_pull_secret: bool = False
    # the folder under `registry` the agents are pushed to, and ${USER}; default: $USER
    user: str | None = Field(default=None, max_length=63)

    @field_validator("allowed_contexts")
    @classmethod
    def _context_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(CONTEXT_PATTERN, name):
                raise ValueError(f"each entry is a kube context name; got {short_value(name)}")
        return value


# An upstream registry as image names spell it: a host name, optionally with a port.
UPSTREAM_PATTERN = (
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$"
)


class MirrorSettings(_Strict):
    """One pull-through cache: pulls of ``<upstream>/...`` try it before the upstream."""

    upstream: str = Field(pattern=UPSTREAM_PATTERN, max_length=253)
    remote_url: str
    username_env: str | None = Field(default=None, pattern=ENV_VAR_PATTERN)
    password_env: str | None = Field(default=None, pattern=ENV_VAR_PATTERN)
    ca_file: str | None = Field(default=None, min_length=1)  # relative to the config's folder

    @field_validator("remote_url")
    @classmethod
    def _remote(cls, value: str) -> str:
        value = probe_url(value)
        if value.split("://", 1)[1].rstrip("/").count("/"):
            raise ValueError(
                "must be the registry's base URL without a path, such as "
                "https://registry-1.docker.io"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _both_credentials(self) -> MirrorSettings:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError(
                "give both username_env and password_env (the names of the variables that "
                "hold the upstream's credentials), or neither"
            )
        return self


def default_mirrors() -> list[MirrorSettings]:
    from pallet_dev.mirrors import DEFAULT_MIRRORS

    return [MirrorSettings(upstream=up, remote_url=url) for up, url in DEFAULT_MIRRORS]


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


def _resolve_mirror_ca_files(
    config: Config, base: Path, origin: Mapping[tuple[str, ...], str]
) -> Config:
    """Each mirror's ca_file becomes an absolute path to a readable PEM file."""
    mirrors: list[MirrorSettings] = []
    for index, mirror in enumerate(config.mirrors):
        if mirror.ca_file is None:
            mirrors.append(mirror)
            continue
        where = origin.get(("mirrors", str(index), "ca_file")) or "config"
        ca_file = mirror.ca_file
        found = _usable_path(lambda: base / Path(ca_file).expanduser(), lambda path: True)
        if isinstance(found, str):  # ~user of no user, a NUL byte: said, never a traceback
            raise ConfigError(
                f"{where}: mirrors.{index}.ca_file: cannot use the CA file "
                f"{short_value(ca_file)} of mirror '{mirror.upstream}' ({found}).",
                hint="Give the path of the upstream's CA certificate (PEM), relative to "
                "pallet-dev.yaml.",
            )
        path = found
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ConfigError(
                f"{where}: mirrors.{index}.ca_file: cannot read the CA file "
                f"{short_value(mirror.ca_file)} of mirror '{mirror.upstream}' "
                f"({exc.strerror or exc}).",
                hint="Give the path of the upstream's CA certificate (PEM), relative to "
                "pallet-dev.yaml.",
            ) from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(
                f"{where}: mirrors.{index}.ca_file: {path} holds no PEM certificate "
                "(-----BEGIN CERTIFICATE-----).",
                hint="Give the upstream's CA certificate in PEM form.",
            )
        mirrors.append(mirror.model_copy(update={"ca_file": str(path)}))
    return config.model_copy(update={"mirrors": mirrors})


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


def _resolve_cluster(
    config: Config, origin: Mapping[tuple[str, ...], str], environ: Mapping[str, str]
) -> Config:
    """`backend: cluster`: the context is set and allow-listed, ${USER}/${NAME} expand to a
    namespace that is a DNS label, and the registry is set. Runs before any cluster call,
    so a context outside ``allowed_contexts`` is refused before anything is asked of it."""
    from pallet_dev.errors import ContextNotAllowed

    cluster = config.cluster

    def where(*field: str) -> str:
        for size in range(len(field), -1, -1):
            found = origin.get(("cluster", *field[:size]))
            if found:
                return found
        return origin.get(()) or "config"

    if cluster.context is None:
        raise ConfigError(
            f"{where('context')}: cluster.context: `backend: cluster` needs the kube context "
            "of the team's cluster.",
            hint="Set cluster.context (see `kubectl config get-contexts`) and list it in "
            "cluster.allowed_contexts.",
        )
    if cluster.context not in cluster.allowed_contexts:
        allowed = ", ".join(cluster.allowed_contexts) or "none"
        raise ContextNotAllowed(
            f"{where('context')}: cluster.context: the kube context {short_value(cluster.context)}"
            f" is not in cluster.allowed_contexts (allowed: {allowed}), so pallet-dev refuses "
            "to use it.",
            hint="List it in cluster.allowed_contexts if it is meant for development, or set "
            "cluster.context to an allowed one.",
        )
    if cluster.registry is None:
        raise ConfigError(
            f"{where('registry')}: cluster.registry: `backend: cluster` pushes the agents to "
            "the team's registry, and none is set.",
            hint="Set cluster.registry to its address and folder, for example "
            "registry.team.example/pallet (docs/shared-cluster.md).",
        )
    user = cluster.user or _login_name(environ)
    if not REPOSITORY_COMPONENT.match(user):
        field = "cluster.user" if cluster.user else "the variable USER"
        raise ConfigError(
            f"{where('user')}: {field}: {short_value(user)} cannot be a folder of an image "
            "path (lower-case letters, digits and inner . _ -).",
            hint="Set cluster.user to such a name.",
        )
    namespace = cluster.namespace
    for variable, value in (("${USER}", user), ("${NAME}", config.name)):
        namespace = namespace.replace(variable, value)
    if not DNS_LABEL.match(namespace):
        raise ConfigError(
            f"{where('namespace')}: cluster.namespace: {short_value(cluster.namespace)} expands "
            f"to {short_value(namespace)}, which is not a valid namespace (at most 63 lower-case "
            "letters, digits or inner dashes; ${USER} and ${NAME} are the only variables).",
            hint="Give a name such as pallet-${USER}.",
        )
    resolved = cluster.model_copy(update={"namespace": namespace, "user": user})
    return config.model_copy(update={"cluster": resolved})


def _login_name(environ: Mapping[str, str]) -> str:
    """The user's login name, lower-cased (namespaces and image paths are)."""
    name = environ.get("USER") or environ.get("LOGNAME")
    if not name:
        import getpass

        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "user"
    return name.lower()


def _usable_path(make: Callable[[], Path], probe: Callable[[Path], bool]) -> Path | str:
    """The resolved path, or why the text cannot be one (``~user`` of no user, a NUL byte,
    a name longer than the file system takes): said in the message, never a traceback."""
    try:
        path = make().resolve()
        probe(path)
    except RuntimeError as exc:  # expanduser: no such user, or no home folder
        return str(exc).rstrip(".").lower()
    except ValueError as exc:  # a NUL byte
        return str(exc).rstrip(".")
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return path


def _shown(path: Path) -> str:
    """A resolved path for a message: a long one is cut (messages stay short)."""
    text = str(path)
    return text if len(text) <= 200 else text[:100] + "..." + text[-97:]


def short_value(value: object, limit: int = 60) -> str:
    """A value quoted for a message: escaped and at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
