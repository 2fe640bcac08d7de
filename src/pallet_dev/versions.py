"""The versions of external tools pallet-dev supports or pins, in one place.

`doctor` checks against these; the install scripts and CI pin the exact releases in
``.ci/versions.env`` (keep ``PINNED_KIND`` in step with its ``KIND_VERSION``).

- kind >= v0.20.0: the registry is wired into nodes through containerd's per-host
  folder (``config_path`` + ``hosts.toml``); kind v0.20 deprecated the inline
  ``registry.mirrors`` patches, and containerd refuses to combine the two.
- kind v0.33.0 is pinned: the default node image (config.DEFAULT_KIND_NODE_IMAGE) is
  that release's own default, and node images are built per kind release
  (``KIND_NODE_IMAGES``: each release's default, from its pkg/apis/config/defaults/image.go).
- Helm 3.x or 4.x (tools/helm.py spells the flags that differ per major).
- kubectl within one minor version of the cluster's Kubernetes (the upstream skew
  policy; kind's known-issues page warns about clients skewed too far).
- Docker server >= 20.10: the oldest engine the Docker backend is tested on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, ...]

MIN_KIND: Version = (0, 20, 0)
PINNED_KIND: Version = (0, 33, 0)
# kind release (major, minor) -> its default node image, by digest
KIND_NODE_IMAGES: dict[Version, str] = {
    (0, 30): "kindest/node:v1.34.0@sha256:"
    "7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a",
    (0, 31): "kindest/node:v1.35.0@sha256:"
    "452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f",
    (0, 32): "kindest/node:v1.36.1@sha256:"
    "3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
    (0, 33): "kindest/node:v1.37.0@sha256:"
    "a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
}
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


# How to install the pinned kind; every install hint for kind is built from this one.
KIND_INSTALL = (
    f"`go install sigs.k8s.io/kind@{show(PINNED_KIND)}` or "
    "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
)


@dataclass(frozen=True)
class ToolVersion:
    """A version as the tool spells it (``raw``: "v1.32.4-dispatcher") and its numbers."""

    raw: str
    numbers: Version | None  # None when ``raw`` holds no MAJOR.MINOR

    @classmethod
    def of(cls, raw: str) -> ToolVersion:
        return cls(raw, parse_version(raw))

    def __str__(self) -> str:
        return self.raw


def node_image_kubernetes(image: str) -> Version | None:
    """(major, minor) of Kubernetes from a node image's tag, when the tag says it."""
    match = _IMAGE_TAG.search(image)
    if match is None:
        return None
    version = parse_version(match.group(1))
    return version[:2] if version is not None else None


def kind_release_of_node_image(image: str) -> Version | None:
    """The kind release whose default node image ``image`` is (same digest), if any."""
    digest = image.partition("@")[2]
    for release, known in KIND_NODE_IMAGES.items():
        if digest and known.partition("@")[2] == digest:
            return release
    return None


def kubectl_skew(client: Version, cluster: Version) -> int:
    """How many minor versions kubectl is from the cluster (99 when even the majors differ)."""
    if client[:1] != cluster[:1]:
        return 99
    return abs(client[1] - cluster[1])
