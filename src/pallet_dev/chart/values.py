"""The pallet-registry chart's values: the pydantic model, Helm's merge, and the loader.

:class:`ChartValues` is the one source of truth for the chart's values. The chart's
``values.schema.json`` is generated from it (``python -m pallet_dev.chart.schema``),
and a test compares the model's defaults with ``values.yaml``, so Helm and pallet-dev
accept and reject the same values.

:func:`load_values` merges the chart's ``values.yaml``, ``values-dev.yaml``, the
user's ``--values`` files and ``--set`` overrides exactly as Helm does, validates the
result and reports the first problems as :class:`~pallet_dev.errors.ConfigError`
sentences: ``<file:line or --set>: <field.path>: <what is wrong> (got <value>;
allowed: <what is allowed>).``
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from pallet_dev.errors import ConfigError
from pallet_dev.yamlsource import read_yaml_mapping

CHART_NAME = "pallet-registry"
VALUES_FILE = "values.yaml"
DEV_VALUES_FILE = "values-dev.yaml"
SCHEMA_FILE = "values.schema.json"

# CNCF distribution 3.1.2; the chart's appVersion. The kind backend preloads this
# image into the node (`kind load docker-image`), so the chart never pulls it.
DEFAULT_IMAGE_REPOSITORY = "registry"
DEFAULT_IMAGE_TAG = "3.1.2"
DEFAULT_IMAGE = f"{DEFAULT_IMAGE_REPOSITORY}:{DEFAULT_IMAGE_TAG}"
# The port the registry listens on inside the pod and the Service port.
CONTAINER_PORT = 5000
# Kubernetes' default NodePort range (--service-node-port-range).
NODE_PORT_MIN = 30000
NODE_PORT_MAX = 32767
# The static band (KEP-3668): the API server allocates random NodePorts from the
# upper part of the range first, so a fixed port here rarely collides.
STATIC_NODE_PORT_BAND = (30000, 30085)
# The fixed NodePort of the registry Service; the kind port mapping's containerPort.
DEFAULT_NODE_PORT = 30050
# Where the hostPath PersistentVolume keeps the data inside the kind node; the kind
# config bind-mounts the host data folder here (extraMounts), so it survives
# `kind delete cluster`.
NODE_DATA_PATH = "/var/lib/pallet-registry"
# The registry process's uid/gid. hostPath volumes ignore fsGroup: a host data folder
# must be writable by this uid (pallet-dev creates it with mode 0777).
REGISTRY_UID = 1000
REGISTRY_GID = 1000

# Patterns shared by the model and values.schema.json (ECMA-262 and Rust regex alike),
# each with the phrase error messages use for "allowed: ...".
DNS_LABEL_OR_EMPTY = r"^([a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?)?$"
DNS_SUBDOMAIN_OR_EMPTY = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]{1,253}$"
IMAGE_REPOSITORY = r"^[a-z0-9]([a-z0-9._/:-]{0,253}[a-z0-9])?$"
IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
POSITIVE_SIZE = (
    r"^(0*[1-9][0-9]*(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
)
QUANTITY = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$"
DURATION = r"^([0-9]+(ms|s|m|h))+$"
ABSOLUTE_PATH = r"^(/[A-Za-z0-9._-]+)+/?$"
BCRYPT_HTPASSWD_LINE = r"^[^:\s]+:\$2[aby]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$"
IMAGE_REPOSITORY_OR_EMPTY = "^(" + IMAGE_REPOSITORY[1:-1] + ")?$"
IMAGE_TAG_OR_EMPTY = "^(" + IMAGE_TAG[1:-1] + ")?$"
IMAGE_DIGEST_OR_EMPTY = r"^(sha256:[a-f0-9]{64})?$"

PATTERN_PHRASES: dict[str, str] = {
    DNS_LABEL_OR_EMPTY: "empty, or up to 53 lower-case letters, digits and inner dashes",
    DNS_SUBDOMAIN_OR_EMPTY: "empty, or a Kubernetes object name (lower-case, digits, '-', '.')",
    SECRET_KEY: "a Secret key name (letters, digits, '-', '_', '.')",
    IMAGE_REPOSITORY: "an image repository such as registry or localhost:5001/registry",
    IMAGE_TAG: "an image tag such as 3.1.2",
    IMAGE_DIGEST_OR_EMPTY: "empty, or a digest sha256:<64 hex digits>",
    POSITIVE_SIZE: "a positive Kubernetes quantity such as 100Mi or 10Gi",
    QUANTITY: "a Kubernetes quantity string such as 100m, 0.5 or 128Mi",
    DURATION: "a duration such as 10s, 30m or 168h",
    ABSOLUTE_PATH: "an absolute path such as /var/lib/pallet-registry",
    BCRYPT_HTPASSWD_LINE: "a bcrypt htpasswd line 'user:$2y$...' (htpasswd -nbB user password)",
    IMAGE_REPOSITORY_OR_EMPTY: "empty (the registry image), or an image repository",
    IMAGE_TAG_OR_EMPTY: "empty (the registry image's tag), or an image tag",
}


class RuleViolation(ValueError):
    """A rule across fields, reported against one field (relative to the model)."""

    def __init__(
        self,
        field: Sequence[str],
        problem: str,
        value: Any,
        allowed: str,
        *,
        because: Sequence[Sequence[str]] = (),
    ) -> None:
        super().__init__(f"{'.'.join(field)}: {problem}")
        self.field = tuple(field)
        # the fields whose values made the rule apply; the error names whichever source
        # (file:line or --set) set the reported field or one of these last
        self.because = tuple(tuple(path) for path in because)
        self.problem = problem
        self.value = value
        self.allowed = allowed


class _Values(BaseModel):
    # strict: no "30050" → 30050 coercion, so the model rejects what the JSON schema does.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, alias_generator=to_camel)


class ImageValues(_Values):
    """The registry image. The kind backend preloads it, so it is never pulled."""

    repository: str = Field(DEFAULT_IMAGE_REPOSITORY, pattern=IMAGE_REPOSITORY)
    tag: str = Field(DEFAULT_IMAGE_TAG, pattern=IMAGE_TAG, description='Quote it: "3.1.2".')
    digest: str = Field(
        "", pattern=IMAGE_DIGEST_OR_EMPTY, description="When set, the image is run by digest."
    )
    pull_policy: Literal["IfNotPresent", "Never", "Always"] = "IfNotPresent"


class ServiceValues(_Values):
    """The registry Service; NodePort so the kind port mapping reaches it."""

    type: Literal["NodePort", "ClusterIP"] = "NodePort"
    port: int = Field(CONTAINER_PORT, ge=1, le=65535)
    node_port: int = Field(
        DEFAULT_NODE_PORT,
        ge=NODE_PORT_MIN,
        le=NODE_PORT_MAX,
        description=(
            "Fixed NodePort; the kind extraPortMappings containerPort must equal it. "
            "Prefer the static band 30000-30085."
        ),
    )
    annotations: dict[str, str] = Field(default_factory=dict)


class UploadPurgingValues(_Values):
    """Removal of abandoned uploads under _uploads/."""

    enabled: bool = True
    age: str = Field("168h", pattern=DURATION)
    interval: str = Field("24h", pattern=DURATION)


class HealthCheckValues(_Values):
    """Storage driver health check; `GET /` (the readiness probe) answers 503 while it fails."""

    enabled: bool = True
    interval: str = Field("10s", pattern=DURATION)
    threshold: int = Field(3, ge=1, le=100)


class HttpSecretValues(_Values):
    """Secret that signs upload state; required (and shared) when replicaCount > 1."""

    existing_secret: str = Field("", pattern=DNS_SUBDOMAIN_OR_EMPTY)
    key: str = Field("haSharedSecret", pattern=SECRET_KEY)


class RegistrySettingsValues(_Values):
    """What goes into the registry's config.yml."""

    log_level: Literal["error", "warn", "info", "debug"] = "info"
    delete_enabled: bool = Field(True, description="Allow DELETE of manifests and blobs.")
    drain_timeout_seconds: int = Field(
        20, ge=1, le=600, description="http.draintimeout: how long SIGTERM waits for requests."
    )
    pre_stop_sleep_seconds: int = Field(
        3,
        ge=0,
        le=60,
        description="Sleep before SIGTERM so the Service stops routing first (0: none).",
    )
    upload_purging: UploadPurgingValues = Field(default_factory=UploadPurgingValues)
    health_check: HealthCheckValues = Field(default_factory=HealthCheckValues)
    http_secret: HttpSecretValues = Field(default_factory=HttpSecretValues)

    @property
    def termination_grace_period_seconds(self) -> int:
        """Kept above preStop sleep + drain timeout so the drain is never cut short."""
        return self.pre_stop_sleep_seconds + self.drain_timeout_seconds + 5


class HtpasswdValues(_Values):
    """Optional htpasswd (bcrypt) auth: inline entries, or an existing Secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {
                        "properties": {
                            "enabled": {"const": True},
                            "existingSecret": {"const": ""},
                        },
                        "required": ["enabled", "existingSecret"],
                    },
                    "then": {"properties": {"entries": {"minItems": 1}}, "required": ["entries"]},
                },
                {
                    "if": {
                        "properties": {"existingSecret": {"minLength": 1}},
                        "required": ["existingSecret"],
                    },
                    "then": {"properties": {"entries": {"maxItems": 0}}},
                },
            ]
        }
    )

    enabled: bool = False
    realm: str = Field("pallet-registry", min_length=1, max_length=100)
    existing_secret: str = Field(
        "", pattern=DNS_SUBDOMAIN_OR_EMPTY, description="Secret holding the htpasswd file."
    )
    secret_key: str = Field("htpasswd", pattern=SECRET_KEY)
    entries: list[Annotated[str, Field(pattern=BCRYPT_HTPASSWD_LINE)]] = Field(
        default_factory=list,
        description="htpasswd lines (bcrypt only); the chart renders them into a Secret.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> HtpasswdValues:
        if self.enabled and not self.existing_secret and not self.entries:
            raise RuleViolation(
                ("entries",),
                "must not be empty when auth is enabled without existingSecret",
                self.entries,
                "at least one bcrypt htpasswd line, or set existingSecret",
                because=[("enabled",)],
            )
        if self.existing_secret and self.entries:
            raise RuleViolation(
                ("entries",),
                "must be empty when existingSecret is set",
                self.entries,
                "[] together with existingSecret",
                because=[("existingSecret",)],
            )
        return self


class AuthValues(_Values):
    htpasswd: HtpasswdValues = Field(default_factory=HtpasswdValues)


class HostPathValues(_Values):
    """A hostPath PersistentVolume bound only to this chart's PVC (data in a host folder)."""

    enabled: bool = False
    path: str = Field(
        NODE_DATA_PATH,
        pattern=ABSOLUTE_PATH,
        description="Folder inside the kind node; must exist and be writable by runAsUser.",
    )


class PersistenceValues(_Values):
    """Registry data. The PVC (and PV) carry helm.sh/resource-policy: keep."""

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {
                        "properties": {
                            "hostPath": {
                                "properties": {"enabled": {"const": True}},
                                "required": ["enabled"],
                            }
                        },
                        "required": ["hostPath"],
                    },
                    "then": {
                        "properties": {
                            "existingClaim": {"const": ""},
                            "enabled": {"const": True},
                        }
                    },
                }
            ]
        }
    )

    enabled: bool = Field(True, description="false: an emptyDir (data lost with the pod).")
    size: str = Field("10Gi", pattern=POSITIVE_SIZE)
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] = "ReadWriteOnce"
    storage_class: str | None = Field(
        None,
        pattern=DNS_SUBDOMAIN_OR_EMPTY,
        description='null: the cluster default; "": no class (static binding).',
    )
    existing_claim: str = Field(
        "", pattern=DNS_SUBDOMAIN_OR_EMPTY, description="Use this PVC instead of creating one."
    )
    host_path: HostPathValues = Field(default_factory=HostPathValues)

    @model_validator(mode="after")
    def _host_path_rules(self) -> PersistenceValues:
        if self.host_path.enabled and self.existing_claim:
            raise RuleViolation(
                ("existingClaim",),
                "must be empty when hostPath.enabled is true",
                self.existing_claim,
                '"" (the chart creates the PVC bound to the hostPath volume)',
                because=[("hostPath", "enabled")],
            )
        if self.host_path.enabled and not self.enabled:
            raise RuleViolation(
                ("enabled",),
                "must be true when hostPath.enabled is true",
                self.enabled,
                "true",
                because=[("hostPath", "enabled")],
            )
        return self


class ResourceQuantities(_Values):
    cpu: str | None = Field(None, pattern=QUANTITY)
    memory: str | None = Field(None, pattern=QUANTITY)


class ResourcesValues(_Values):
    requests: ResourceQuantities = Field(
        default_factory=lambda: ResourceQuantities.model_validate({"cpu": "25m", "memory": "32Mi"})
    )
    limits: ResourceQuantities = Field(
        default_factory=lambda: ResourceQuantities.model_validate(
            {"cpu": "500m", "memory": "256Mi"}
        )
    )


class PodSecurityValues(_Values):
    """The pod always runs non-root; these pick the ids."""

    run_as_user: int = Field(REGISTRY_UID, ge=1, le=2147483647)
    run_as_group: int = Field(REGISTRY_GID, ge=1, le=2147483647)
    fs_group: int = Field(REGISTRY_GID, ge=1, le=2147483647)


class Toleration(_Values):
    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: int | None = Field(None, ge=0)


class ImagePullSecret(_Values):
    name: str = Field(pattern=DNS_SUBDOMAIN_OR_EMPTY, min_length=1)


class HelmTestImageValues(_Values):
    """Image of the `helm test` pod; it needs /bin/sh and wget. Empty: the registry image."""

    repository: str = Field("", pattern=IMAGE_REPOSITORY_OR_EMPTY)
    tag: str = Field("", pattern=IMAGE_TAG_OR_EMPTY)
    pull_policy: Literal["IfNotPresent", "Never", "Always"] = "IfNotPresent"


class HelmTestCredentialsValues(_Values):
    """With auth on: a Secret with a user's plain credentials, so the test logs in."""

    existing_secret: str = Field("", pattern=DNS_SUBDOMAIN_OR_EMPTY)
    username_key: str = Field("username", pattern=SECRET_KEY)
    password_key: str = Field("password", pattern=SECRET_KEY)


class HelmTestValues(_Values):
    """The `helm test` pod: GET /v2/ answers 200 with the API version header (with auth
    on and no credentials: 401, proving auth is enforced)."""

    enabled: bool = True
    image: HelmTestImageValues = Field(default_factory=HelmTestImageValues)
    credentials: HelmTestCredentialsValues = Field(default_factory=HelmTestCredentialsValues)


class ChartValues(_Values):
    """Values of the pallet-registry chart."""

    model_config = ConfigDict(
        title="pallet-registry values",
        json_schema_extra={
            "allOf": [
                {
                    "if": {
                        "properties": {"replicaCount": {"minimum": 2}},
                        "required": ["replicaCount"],
                    },
                    "then": {
                        "properties": {
                            "registry": {
                                "properties": {
                                    "httpSecret": {
                                        "properties": {"existingSecret": {"minLength": 1}}
                                    }
                                }
                            }
                        }
                    },
                }
            ]
        },
    )

    name_override: str = Field("", pattern=DNS_LABEL_OR_EMPTY)
    fullname_override: str = Field("", pattern=DNS_LABEL_OR_EMPTY)
    replica_count: int = Field(1, ge=0, le=10)
    deployment_strategy: Literal["Recreate", "RollingUpdate"] = Field(
        "Recreate", description="Recreate: never two registries writing one volume."
    )
    image: ImageValues = Field(default_factory=ImageValues)
    image_pull_secrets: list[ImagePullSecret] = Field(default_factory=list)
    service: ServiceValues = Field(default_factory=ServiceValues)
    registry: RegistrySettingsValues = Field(default_factory=RegistrySettingsValues)
    auth: AuthValues = Field(default_factory=AuthValues)
    persistence: PersistenceValues = Field(default_factory=PersistenceValues)
    resources: ResourcesValues = Field(default_factory=ResourcesValues)
    pod_security_context: PodSecurityValues = Field(default_factory=PodSecurityValues)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    tests: HelmTestValues = Field(default_factory=HelmTestValues)

    @model_validator(mode="after")
    def _shared_http_secret(self) -> ChartValues:
        if self.replica_count > 1 and not self.registry.http_secret.existing_secret:
            raise RuleViolation(
                ("registry", "httpSecret", "existingSecret"),
                "must name a Secret when replicaCount is above 1",
                self.registry.http_secret.existing_secret,
                "a Secret name (replicas must share one upload-signing secret)",
                because=[("replicaCount",)],
            )
        return self

    @property
    def image_ref(self) -> str:
        if self.image.digest:
            return f"{self.image.repository}@{self.image.digest}"
        return f"{self.image.repository}:{self.image.tag}"


# ---------------------------------------------------------------------------------------
# Helm's merge and --set


def merge_values(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> dict[str, Any]:
    """Merge values like Helm: ``base`` is the chart's defaults, ``overlays`` the user's
    values files and ``--set`` results in precedence order (later wins).

    Overlays are deep-merged with each other (maps merge, everything else replaces, a
    null is kept); the result is then coalesced onto ``base``, where a null removes the
    default key. Inputs are not modified.
    """
    user: dict[str, Any] = {}
    for overlay in overlays:
        user = _merge_maps(user, overlay)
    return _coalesce(copy.deepcopy(user), base, top=True)


def _merge_maps(into: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(into)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge_maps(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _coalesce(user: dict[str, Any], defaults: Mapping[str, Any], *, top: bool) -> dict[str, Any]:
    for key, default in defaults.items():
        if key not in user:
            user[key] = copy.deepcopy(default)
        elif user[key] is None:
            # A null nullifies the chart default (Helm keeps it when the default is null too).
            if top or default is not None:
                del user[key]
        elif isinstance(user[key], dict) and isinstance(default, Mapping):
            _coalesce(user[key], default, top=False)
    return user


def _typed(text: str) -> Any:
    """Type a --set value like Helm's strvals: bools, null and decimal ints; else a string."""
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and _is_int64(text):
        return int(text)
    return text


def _is_int64(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isdecimal() and body.isascii() and -(2**63) <= int(text) < 2**63


def _split(text: str, separator: str, *, braces: bool = False) -> list[str]:
    """Split on unescaped ``separator`` (outside ``{...}`` when ``braces``), keep escapes."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(char + text[index + 1])
            index += 2
            continue
        if braces and char == "{":
            depth += 1
        elif braces and char == "}":
            depth = max(depth - 1, 0)
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def parse_set(expr: str) -> dict[str, Any]:
    """Parse one ``--set`` argument like Helm: ``a.b=1,c=true,d=null,e={x,y}``.

    Dotted keys nest, ``\\.``, ``\\,`` and ``\\=`` escape, values are typed as Helm types
    them (true/false, null, decimal integers without a leading zero; the rest stays a
    string), ``{x,y}`` is a list. List indexes (``a[0]=x``) are not supported.
    """
    result: dict[str, Any] = {}
    if not expr.strip():
        raise ConfigError("--set: empty expression (expected key=value).")
    for pair in _split(expr, ",", braces=True):
        key_and_value = _split(pair, "=")
        if len(key_and_value) < 2:
            raise ConfigError(
                f"--set {expr}: {pair!r} has no value "
                "(expected key=value, e.g. service.nodePort=30050)."
            )
        raw_key, raw_value = key_and_value[0], "=".join(key_and_value[1:])
        keys = [_unescape(part) for part in _split(raw_key, ".")]
        if any(not key for key in keys):
            raise ConfigError(f"--set {expr}: {raw_key!r} has an empty key segment.")
        if any("[" in key and key.endswith("]") for key in keys):
            raise ConfigError(
                f"--set {expr}: list indexes ({raw_key}) are not supported; use a values file."
            )
        value: Any
        if raw_value.startswith("{") and raw_value.endswith("}"):
            inner = raw_value[1:-1]
            value = [_typed(_unescape(item)) for item in _split(inner, ",")] if inner else []
        else:
            value = _typed(_unescape(raw_value))
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[keys[-1]] = value
    return result


# ---------------------------------------------------------------------------------------
# Loading and error reporting


@dataclass(frozen=True)
class _Source:
    """One layer of values: its data and how to name where a key came from."""

    data: dict[str, Any]
    locate: Callable[[tuple[str, ...]], str]


def _set_source(expr: str) -> _Source:
    label = f"--set {expr}"
    return _Source(parse_set(expr), lambda _loc: label)


def _read_values_file(path: Path) -> _Source:
    values = read_yaml_mapping(
        path, what="values file", keys="service, persistence, ...", flag="--values"
    )
    loaded = values.data
    if any(not isinstance(key, str) for key in _all_keys(loaded)):
        bad = next(key for key in _all_keys(loaded) if not isinstance(key, str))
        raise ConfigError(f"{path}: key {bad!r} must be a string (quote it).")
    return _Source(loaded, values.locate)


def _all_keys(data: Any) -> Iterator[Any]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _all_keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from _all_keys(item)


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, str(index)))


def load_values(
    chart_dir: Path,
    values_files: Sequence[Path] = (),
    set_overrides: Sequence[str] = (),
    include_dev: bool = True,
) -> ChartValues:
    """Merge and validate the chart's values as ``helm install`` would see them.

    Order, lowest to highest: ``values.yaml``, ``values-dev.yaml`` (``include_dev``),
    ``values_files`` in order, ``set_overrides`` in order. Raises
    :class:`~pallet_dev.errors.ConfigError` naming the file:line (or ``--set``), the
    field path, what is wrong, the value and what is allowed.
    """
    defaults = _read_values_file(chart_dir / VALUES_FILE)
    overlays: list[_Source] = []
    if include_dev:
        overlays.append(_read_values_file(chart_dir / DEV_VALUES_FILE))
    overlays.extend(_read_values_file(Path(path)) for path in values_files)
    overlays.extend(_set_source(expr) for expr in set_overrides)

    origins = _Origins()
    for rank, source in enumerate((defaults, *overlays)):
        for path in _paths(source.data):
            origins.record(path, rank, source)

    merged = merge_values(defaults.data, *(source.data for source in overlays))
    from pallet_dev.chart.schema import missing_keys

    removed = missing_keys(merged)
    if removed:
        path = removed[0]
        raise ConfigError(
            f"{origins.where([path])}: {'.'.join(path)}: is required; null removes the chart's "
            f"default (got null; allowed: {_allowed_at(path)}).",
            hint="Drop the null override to keep the default.",
        )
    try:
        return ChartValues.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, origins.where),
            hint=f"See {chart_dir / VALUES_FILE} for every key and its default.",
        ) from None


class _Origins:
    """Which layer set each key path last, to name it (file:line or --set) in errors."""

    def __init__(self) -> None:
        self._by_path: dict[tuple[str, ...], tuple[int, _Source]] = {}

    def record(self, path: tuple[str, ...], rank: int, source: _Source) -> None:
        if path:
            self._by_path[path] = (rank, source)

    def _find(self, loc: tuple[str, ...]) -> tuple[int, tuple[str, ...], _Source] | None:
        for size in range(len(loc), 0, -1):
            found = self._by_path.get(loc[:size])
            if found is not None:
                return found[0], loc[:size], found[1]
        return None

    def where(self, candidates: Sequence[tuple[str, ...]]) -> str:
        """The layer that set the first candidate path, or a later one that set another."""
        best: tuple[int, tuple[str, ...], _Source] | None = None
        for loc in candidates:
            found = self._find(loc)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return best[2].locate(best[1]) if best is not None else "values"


_PROBLEMS = {
    "extra_forbidden": "unknown key",
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string, quoted in YAML (--set-string on the command line)",
    "string_pattern_mismatch": "has the wrong format",
    "literal_error": "is not one of the allowed values",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "none_required": "must be null",
}


def format_validation_error(
    exc: ValidationError,
    where: Callable[[Sequence[tuple[str, ...]]], str],
    limit: int = 3,
) -> str:
    """One sentence per problem (at most ``limit``): where, field path, problem, value, rule.

    ``where`` names the source of a problem given the field paths involved (the field
    first, then the fields that made a cross-field rule apply).
    """
    sentences: list[str] = []
    errors = _dedupe_union_errors(exc.errors())
    for error in errors[:limit]:
        loc = tuple(str(part) for part in error["loc"])
        value = error.get("input")
        cause = (error.get("ctx") or {}).get("error")
        involved: list[tuple[str, ...]] = []
        if isinstance(cause, RuleViolation):
            involved = [(*loc, *path) for path in cause.because]
            loc = (*loc, *cause.field)
            problem, value, allowed = cause.problem, cause.value, cause.allowed
        elif error["type"] == "extra_forbidden":
            problem = "unknown key"
            allowed = _allowed_keys(loc[:-1])
        else:
            problem = _PROBLEMS.get(error["type"]) or _problem_text(error)
            allowed = _allowed_at(loc)
        path = ".".join(loc) or "(top level)"
        source = where([loc, *involved])
        sentences.append(f"{source}: {path}: {problem} (got {_show(value)}; allowed: {allowed}).")
    if len(errors) > limit:
        sentences.append(f"({len(errors) - limit} more problem(s) not shown.)")
    return " ".join(sentences)


def _dedupe_union_errors(errors: list[Any]) -> list[Any]:
    """`str | None` fields report one error per union member; keep the first per field."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for error in errors:
        loc = tuple(str(part) for part in error["loc"] if part not in ("str", "none", "int"))
        if error["type"] != "extra_forbidden" and loc in seen:
            continue
        seen.add(loc)
        error = {**error, "loc": loc}
        kept.append(error)
    return kept


def _problem_text(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    message = message.replace("Value error, ", "").replace("Input should be", "must be")
    return message


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _schema_at(loc: tuple[str, ...]) -> dict[str, Any] | None:
    from pallet_dev.chart.schema import values_schema

    node: dict[str, Any] | None = values_schema()
    for key in loc:
        if node is None:
            return None
        node = _non_null(node)
        if key in node.get("properties", {}):
            node = node["properties"][key]
        elif key.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def _non_null(node: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in node.get("anyOf", []) if option.get("type") != "null"]
    return options[0] if len(options) == 1 else node


def _allowed_keys(loc: tuple[str, ...]) -> str:
    node = _schema_at(loc)
    keys = sorted(_non_null(node).get("properties", {})) if node else []
    return "the keys " + ", ".join(keys) if keys else "no other keys"


def _allowed_at(loc: tuple[str, ...]) -> str:
    node = _schema_at(loc)
    return describe_schema(node) if node is not None else "see values.yaml"


def describe_schema(node: Mapping[str, Any]) -> str:
    """What a JSON schema node accepts, in a few words (for "allowed: ..." in errors)."""
    if "anyOf" in node:
        return " or ".join(describe_schema(option) for option in node["anyOf"])
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(item) for item in node["enum"])
    kind = node.get("type")
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if low is not None and high is not None:
            return f"an integer from {low} to {high}"
        if low is not None:
            return f"an integer of at least {low}"
        return "an integer"
    if kind == "string":
        pattern = node.get("pattern")
        if pattern:
            return PATTERN_PHRASES.get(pattern, f"a string matching {pattern}")
        if "maxLength" in node:
            return f"a string of {node.get('minLength', 0)} to {node['maxLength']} characters"
        return "a string"
    if kind == "array":
        items = node.get("items")
        return f"a list of {describe_schema(items)}" if isinstance(items, dict) else "a list"
    if kind == "object":
        keys = sorted(node.get("properties", {}))
        if keys:
            return "a mapping with the keys " + ", ".join(keys)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"a mapping of names to {describe_schema(extra)}"
        return "a mapping"
    return "see values.yaml"
