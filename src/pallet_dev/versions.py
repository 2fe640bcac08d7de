"""The versions of external tools pallet-dev supports or pins, in one place.

`doctor` checks against these; the install scripts and CI pin the exact releases in
``.ci/versions.env`` (keep ``PINNED_KIND`` in step with its ``KIND_VERSION``).

- kind >= v0.20.0: the registry is wired into nodes through containerd's per-host
  folder (``config_path`` + ``hosts.toml``); kind v0.20 deprecated the inline
  ``registry.mirrors`` patches, and containerd refuses to combine the two.
- kind v0.31.0 is pinned: the default node image (config.DEFAULT_KIND_NODE_IMAGE) is
  built for that release, and node images are built per kind release.
- Helm 3.x or 4.x (tools/helm.py spells the flags that differ per major).
- kubectl within one minor version of the cluster's Kubernetes (the upstream skew
  policy; kind's known-issues page warns about clients skewed too far).
- Docker server >= 20.10: the oldest engine the Docker backend is tested on.
"""

from __future__ import annotations

import re

Version = tuple[int, ...]

MIN_KIND: Version = (0, 20, 0)
PINNED_KIND: Version = (0, 31, 0)
HELM_MAJORS: tuple[int, ...] = (3, 4)
KUBECTL_MINOR_SKEW = 1
MIN_DOCKER_SERVER: Version = (20, 10)

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
# the tag of a node image reference: kindest/node:v1.35.0@sha256:... -> v1.35.0
_IMAGE_TAG = re.compile(r":(v?\d+\.\d+(?:\.\d+)?)[^:/@]*(?:@|$)")


def parse_version(text: str) -> Version | None:
    """The first ``[v]MAJOR.MINOR[.PATCH]`` in ``text`` ("kind v0.31.0 go1.26" -> (0, 31, 0))."""
    match = _VERSION.search(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def at_least(found: Version, minimum: Version) -> bool:
    """``found >= minimum``, comparing only as many parts as ``minimum`` has."""
    return found[: len(minimum)] + (0,) * (len(minimum) - len(found)) >= minimum


def show(version: Version) -> str:
    return "v" + ".".join(str(part) for part in version)


def node_image_kubernetes(image: str) -> Version | None:
    """(major, minor) of Kubernetes from a node image's tag, when the tag says it."""
    match = _IMAGE_TAG.search(image)
    if match is None:
        return None
    version = parse_version(match.group(1))
    return version[:2] if version is not None else None


def kubectl_skew(client: Version, cluster: Version) -> int:
    """How many minor versions kubectl is from the cluster (99 when even the majors differ)."""
    if client[:1] != cluster[:1]:
        return 99
    return abs(client[1] - cluster[1])
