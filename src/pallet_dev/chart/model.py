"""The pydantic model of the pallet-registry chart's values (:class:`ChartValues`).

:class:`ChartValues` is the one source of truth for the chart's values. The chart's
``values.schema.json`` is generated from it (``python -m pallet_dev.chart.schema``),
and a test compares the model's defaults with ``values.yaml``, so Helm and pallet-dev
accept and reject the same values. The sections about the registry process and its data
are in :mod:`pallet_dev.chart.model_registry`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from pallet_dev.chart.constants import (
    CONTAINER_PORT,
    DEFAULT_IMAGE_REPOSITORY,
    DEFAULT_IMAGE_TAG,
    DEFAULT_NODE_PORT,
    DNS_LABEL_OR_EMPTY,
    DNS_SUBDOMAIN_OR_EMPTY,
    IMAGE_DIGEST_OR_EMPTY,
    IMAGE_REPOSITORY,
    IMAGE_REPOSITORY_OR_EMPTY,
    IMAGE_TAG,
    IMAGE_TAG_OR_EMPTY,
    NODE_PORT_MAX,
    NODE_PORT_MIN,
    QUANTITY,
    REGISTRY_GID,
    REGISTRY_UID,
    SECRET_KEY,
)
from pallet_dev.chart.model_base import RuleViolation, StrictValues
from pallet_dev.chart.model_mirrors import MirrorsValues
from pallet_dev.chart.model_registry import AuthValues, PersistenceValues, RegistrySettingsValues


class ImageValues(StrictValues):
    """The registry image. The kind backend preloads it, so it is never pulled."""

    repository: str = Field(DEFAULT_IMAGE_REPOSITORY, pattern=IMAGE_REPOSITORY)
    tag: str = Field(DEFAULT_IMAGE_TAG, pattern=IMAGE_TAG, description='Quote it: "3.1.2".')
    digest: str = Field(
        "", pattern=IMAGE_DIGEST_OR_EMPTY, description="When set, the image is run by digest."
    )
    pull_policy: Literal["IfNotPresent", "Never", "Always"] = "IfNotPresent"


class ServiceValues(StrictValues):
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


class ResourceQuantities(StrictValues):
    cpu: str | None = Field(None, pattern=QUANTITY)
    memory: str | None = Field(None, pattern=QUANTITY)


class ResourcesValues(StrictValues):
    requests: ResourceQuantities = Field(
        default_factory=lambda: ResourceQuantities.model_validate({"cpu": "25m", "memory": "32Mi"})
    )
    limits: ResourceQuantities = Field(
        default_factory=lambda: ResourceQuantities.model_validate(
            {"cpu": "500m", "memory": "256Mi"}
        )
    )


class PodSecurityValues(StrictValues):
    """The pod always runs non-root; these pick the ids."""

    run_as_user: int = Field(REGISTRY_UID, ge=1, le=2147483647)
    run_as_group: int = Field(REGISTRY_GID, ge=1, le=2147483647)
    fs_group: int = Field(REGISTRY_GID, ge=1, le=2147483647)


class Toleration(StrictValues):
    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: int | None = Field(None, ge=0)


class ImagePullSecret(StrictValues):
    name: str = Field(pattern=DNS_SUBDOMAIN_OR_EMPTY, min_length=1)


class HelmTestImageValues(StrictValues):
    """Image of the `helm test` pod; it needs /bin/sh and wget. Empty: the registry image."""

    repository: str = Field("", pattern=IMAGE_REPOSITORY_OR_EMPTY)
    tag: str = Field("", pattern=IMAGE_TAG_OR_EMPTY)
    pull_policy: Literal["IfNotPresent", "Never", "Always"] = "IfNotPresent"


class HelmTestCredentialsValues(StrictValues):
    """With auth on: a Secret with a user's plain credentials, so the test logs in."""

    existing_secret: str = Field("", pattern=DNS_SUBDOMAIN_OR_EMPTY)
    username_key: str = Field("username", pattern=SECRET_KEY)
    password_key: str = Field("password", pattern=SECRET_KEY)


class HelmTestValues(StrictValues):
    """The `helm test` pod: GET /v2/ answers 200 with the API version header (with auth
    on and no credentials: 401, proving auth is enforced)."""

    enabled: bool = True
    image: HelmTestImageValues = Field(default_factory=HelmTestImageValues)
    credentials: HelmTestCredentialsValues = Field(default_factory=HelmTestCredentialsValues)


class ChartValues(StrictValues):
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
    mirrors: MirrorsValues = Field(default_factory=MirrorsValues)

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
