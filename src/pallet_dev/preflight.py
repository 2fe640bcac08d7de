"""Host checks that must pass before `up` creates anything, shared with `doctor`.

Each finding is one sentence and its fix. A blocking finding stops `up` with exit 3
(PrerequisiteError) before a cluster or container exists; the others are warnings.
The facts come from one `docker info` call (tools.docker.HostInfo) and the resolver.

- cgroup v1 with a Kubernetes >= 1.35 node image: 1.35 made the kubelet refuse cgroup v1
  (``failCgroupV1`` defaults to true, KEP-5573), so the node never turns Ready.
- A rootless Docker or Podman daemon: kind's node containers are privileged, which rootless
  daemons grant only with cgroup v2 and delegation; on cgroup v1 it cannot work.
- Docker's containerd image store: `kind load docker-image` can fail on it (kind#3795) when
  an image's other platforms are missing. pallet-dev loads only the registry image, so this
  warns.
- `localhost` without an IPv4 address while the registry listens on 127.0.0.1: pushes to
  ``localhost:<port>`` go to ``::1`` and are refused.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pallet_dev import versions
from pallet_dev.errors import PrerequisiteError

if TYPE_CHECKING:
    from pallet_dev.tools.docker_types import HostInfo

# Kubernetes 1.35 turned failCgroupV1 on by default
CGROUP_V1_LAST_MINOR = (1, 34)
# kind v0.30.0's default node image: Kubernetes 1.34, the last minor that runs on cgroup v1
CGROUP_V1_NODE_IMAGE = versions.KIND_NODE_IMAGES[(0, 30)]
KIND_3795 = "https://github.com/kubernetes-sigs/kind/issues/3795"

Resolver = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Finding:
    name: str  # stable id, as doctor's check names
    blocking: bool
    problem: str
    fix: str


def resolve_localhost(host: str = "localhost") -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order ([] when it does not)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def node_image_findings(host: HostInfo, node_image: str) -> list[Finding]:
    """The kind node image against the host's cgroup version."""
    minor = versions.node_image_kubernetes(node_image)
    release = versions.kind_release_of_node_image(node_image)
    if minor is None and release is not None:  # by digest only: a known release's default
        minor = versions.node_image_kubernetes(versions.KIND_NODE_IMAGES[release])
    if host.cgroup_version != "1" or minor is None or minor <= CGROUP_V1_LAST_MINOR:
        return []
    shown = f"{minor[0]}.{minor[1]}"
    return [
        Finding(
            "cgroup-v1",
            True,
            f"This host runs cgroup v1 and the node image {_short(node_image)} is Kubernetes "
            f"{shown}, whose kubelet refuses cgroup v1 (failCgroupV1, since 1.35): the node "
            "would never turn Ready.",
            f"Set kind.node_image (or PALLET_DEV_KIND_NODE_IMAGE) to a Kubernetes 1.34 image "
            f"by digest, e.g. {CGROUP_V1_NODE_IMAGE}, or boot the host with cgroup v2 "
            "(systemd.unified_cgroup_hierarchy=1).",
        )
    ]


def kind_daemon_findings(host: HostInfo) -> list[Finding]:
    """What the Docker daemon itself means for kind's privileged node containers."""
    findings: list[Finding] = []
    if host.rootless:
        v1 = host.cgroup_version == "1"
        findings.append(
            Finding(
                "rootless",
                v1,
                "The container daemon runs rootless"
                + (
                    " on cgroup v1: kind's privileged node containers cannot start there."
                    if v1
                    else ": kind's privileged node containers need cgroup v2 delegation "
                    "(cpu, memory, pids) for your user."
                ),
                "Use the Docker backend (`pallet-dev up --prefer-docker`), or a rootful daemon"
                + (
                    " or cgroup v2"
                    if v1
                    else "; or set up delegation: https://kind.sigs.k8s.io/docs/user/rootless/"
                )
                + ".",
            )
        )
    if host.containerd_store:
        findings.append(
            Finding(
                "containerd-image-store",
                False,
                "Docker uses the containerd image store, where `kind load docker-image` can fail "
                f"for images with other platforms missing ({KIND_3795}).",
                "If loading the registry image fails, turn the containerd image store off "
                '("features": {"containerd-snapshotter": false} in daemon.json) or pull the '
                "image for your platform only: `docker pull --platform linux/<arch> IMAGE`.",
            )
        )
    return findings


def localhost_findings(
    bind_address: str, port: int, resolve: Resolver = resolve_localhost
) -> list[Finding]:
    """``localhost:<port>`` must reach a registry that listens on an IPv4 loopback address."""
    if not bind_address.startswith("127."):
        return []
    addresses = list(resolve("localhost"))
    if not addresses or any(address.startswith("127.") for address in addresses):
        return []
    return [
        Finding(
            "localhost-ipv6",
            True,
            f"localhost resolves only to {', '.join(addresses)} here, but the registry listens "
            f"on {bind_address}:{port}: pushes to localhost:{port} would be refused.",
            "Add `127.0.0.1 localhost` to /etc/hosts (most systems have both lines).",
        )
    ]


def enforce(findings: Sequence[Finding], warn: Callable[[str], Any]) -> None:
    """Raise on the first blocking finding (exit 3); print the others as warnings."""
    for finding in findings:
        if finding.blocking:
            raise PrerequisiteError(finding.problem, hint=finding.fix)
    for finding in findings:
        warn(f"{finding.problem} {finding.fix}")


def _short(image: str) -> str:
    return image.split("@", 1)[0]
