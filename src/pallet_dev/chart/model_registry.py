"""The sections of the chart's values that configure the registry process and its data:
``registry`` (its config.yml), ``auth`` and ``persistence``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from pallet_dev.chart.constants import (
    ABSOLUTE_PATH,
    BCRYPT_HTPASSWD_LINE,
    DNS_SUBDOMAIN_OR_EMPTY,
    DURATION,
    NODE_DATA_PATH,
    POSITIVE_SIZE,
    SECRET_KEY,
)
from pallet_dev.chart.model_base import RuleViolation, StrictValues


class UploadPurgingValues(StrictValues):
    """Removal of abandoned uploads under _uploads/."""

    enabled: bool = True
    age: str = Field("168h", pattern=DURATION)
    interval: str = Field("24h", pattern=DURATION)


class HealthCheckValues(StrictValues):
    """Storage driver health check; `GET /` (the readiness probe) answers 503 while it fails."""

    enabled: bool = True
    interval: str = Field("10s", pattern=DURATION)
    threshold: int = Field(3, ge=1, le=100)


class HttpSecretValues(StrictValues):
    """Secret that signs upload state; required (and shared) when replicaCount > 1."""

    existing_secret: str = Field("", pattern=DNS_SUBDOMAIN_OR_EMPTY)
    key: str = Field("haSharedSecret", pattern=SECRET_KEY)


class RegistrySettingsValues(StrictValues):
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


class HtpasswdValues(StrictValues):
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


class AuthValues(StrictValues):
    htpasswd: HtpasswdValues = Field(default_factory=HtpasswdValues)


class HostPathValues(StrictValues):
    """A hostPath PersistentVolume bound only to this chart's PVC (data in a host folder)."""

    enabled: bool = False
    path: str = Field(
        NODE_DATA_PATH,
        pattern=ABSOLUTE_PATH,
        description="Folder inside the kind node; must exist and be writable by runAsUser.",
    )


class PersistenceValues(StrictValues):
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
