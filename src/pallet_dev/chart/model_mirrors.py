"""The pull-through caches' section of the chart values (``mirrors``; docs/mirrors.md).

pallet-dev fills ``caches`` from the config's ``mirrors:``; with the chart's default (no
caches) nothing of it renders. One Deployment runs one distribution container per cache
in proxy mode (each its own port), one NodePort Service publishes each cache on the node,
where containerd's hosts.toml points.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from pallet_dev.chart.constants import (
    DNS_SUBDOMAIN_OR_EMPTY,
    NODE_PORT_MAX,
    NODE_PORT_MIN,
    QUANTITY,
)
from pallet_dev.chart.model_base import RuleViolation, StrictValues

# the first cache's container port; the next ones count up (one Pod, one network namespace)
FIRST_CACHE_PORT = 5001


class MirrorCacheValues(StrictValues):
    """One cache: distribution in proxy mode for ``remoteUrl``."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="A DNS label: the container's name and the cache's folder.",
    )
    upstream: str = Field(min_length=1, description="The registry host image names use.")
    remote_url: str = Field(pattern=r"^https?://[^\s/]+$")
    node_port: int = Field(ge=NODE_PORT_MIN, le=NODE_PORT_MAX)
    credentials_secret: str = Field(
        "",
        pattern=DNS_SUBDOMAIN_OR_EMPTY,
        description="A Secret with keys <name>-username and <name>-password; empty: anonymous.",
    )
    ca_config_map: str = Field(
        "",
        pattern=DNS_SUBDOMAIN_OR_EMPTY,
        description="A ConfigMap with key <name>.crt: the upstream's CA certificate (PEM).",
    )


class MirrorResourceValues(StrictValues):
    cpu_request: str = Field("10m", pattern=QUANTITY)
    memory_request: str = Field("16Mi", pattern=QUANTITY)
    memory_limit: str = Field("128Mi", pattern=QUANTITY)


class MirrorsValues(StrictValues):
    """Pull-through caches: each container listens on 5001, 5002, ... in one Pod."""

    caches: list[MirrorCacheValues] = Field(default_factory=list, max_length=30)
    inputs_digest: str = Field(
        "",
        pattern=r"^[0-9a-f]{0,64}$",
        description="Changes when a CA or credential changes, so the Pod rolls.",
    )
    resources: MirrorResourceValues = Field(default_factory=MirrorResourceValues)

    @model_validator(mode="after")
    def _distinct(self) -> MirrorsValues:
        for field in ("name", "node_port"):
            seen = [getattr(cache, field) for cache in self.caches]
            repeated = sorted({str(value) for value in seen if seen.count(value) > 1})
            if repeated:
                key = "nodePort" if field == "node_port" else field
                raise RuleViolation(
                    ("caches",),
                    f"each cache needs its own {key}; repeated: {', '.join(repeated)}",
                    repeated,
                    f"distinct {key} values",
                )
        return self
