"""Names and defaults of the pallet-registry chart, and the patterns its values must match.

Plain data with no imports: tests and tools can read the chart's names and defaults
without loading pydantic.
"""

from __future__ import annotations

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
