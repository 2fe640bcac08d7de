"""`backend: cluster` in the configuration: the model, and its checks once the backend is
chosen (the context allow-listed, ${USER}/${NAME} expanded to a namespace)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from pallet_dev.config_base import Strict, short_value
from pallet_dev.errors import ConfigError

if TYPE_CHECKING:
    from pallet_dev.config import Config

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


class ClusterSettings(Strict):
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


def resolve_cluster(
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
