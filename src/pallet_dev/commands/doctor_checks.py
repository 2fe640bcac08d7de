"""What `pallet-dev doctor` checks: the table of check ids, the result type, the tool checks.

:data:`CHECK_TABLE` names every check once: its title in the report and the backends
that need it (docs/health-and-status.md has the same table). A result is built with
:meth:`CheckResult.passed` or :meth:`CheckResult.failed`, which take both from there.

The tools' versions come from their adapters (``pallet_dev.tools``), which build the
argv and read the output; the checks here only judge what the adapters found. The
host's checks (port, inotify, disk, preflights) are in :mod:`.doctor_host`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pallet_dev import versions
from pallet_dev.settings import Settings
from pallet_dev.errors import (
    CommandFailed,
    CommandTimeout,
    PalletError,
    ToolNotFound,
    VersionUnreadable,
)
from pallet_dev.paths import Paths
from pallet_dev.runner import INSTALL_HINTS, Runner, last_line
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.docker_types import DockerVersion
from pallet_dev.tools.helm import Helm, HelmVersion
from pallet_dev.tools.kind import INSTALL_PINNED, Kind
from pallet_dev.tools.kubectl import Kubectl

BOTH = ("docker", "kind")
KIND_ONLY = ("kind",)
# the cluster backend's own checks (doctor_cluster), its tools included: the rows above keep
# the backends they were written for
CLUSTER_ONLY = ("cluster",)
TOOL_TIMEOUT = 15.0

# kind's known-issues page ("Pod errors due to too many open files"): the Ubuntu
# defaults (8192 / 128) are too low once a cluster runs a few pods.
INOTIFY_DIR = Path("/proc/sys/fs/inotify")
DISK_WARN_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class CheckSpec:
    title: str
    required_for: tuple[str, ...]  # the backends that cannot run without it


# check id (stable: scripts read it from --json) -> its title and who needs it
CHECK_TABLE: dict[str, CheckSpec] = {
    "config": CheckSpec("config", BOTH),
    "docker-cli": CheckSpec("docker CLI", BOTH),
    "docker-daemon": CheckSpec("Docker daemon", BOTH),
    "kind": CheckSpec("kind", KIND_ONLY),
    "kind-node-image": CheckSpec("kind node image", KIND_ONLY),
    "helm": CheckSpec("helm", KIND_ONLY),
    "kubectl": CheckSpec("kubectl", KIND_ONLY),
    "registry-port": CheckSpec("registry port", BOTH),
    "inotify": CheckSpec("inotify limits", KIND_ONLY),
    "disk": CheckSpec("free disk", BOTH),
    # pallet_dev.preflight's findings, by their names
    "cgroup-v1": CheckSpec("cgroups vs node image", KIND_ONLY),
    "rootless": CheckSpec("rootless daemon", KIND_ONLY),
    "containerd-image-store": CheckSpec("containerd image store", KIND_ONLY),
    "localhost-ipv6": CheckSpec("localhost resolves", BOTH),
    # doctor_cluster: `backend: cluster` only
    "cluster-tools": CheckSpec("docker, helm, kubectl", CLUSTER_ONLY),
    "cluster-context": CheckSpec("kube context", CLUSTER_ONLY),
    "cluster-permissions": CheckSpec("RBAC permissions", CLUSTER_ONLY),
    "cluster-registry": CheckSpec("team registry", CLUSTER_ONLY),
    # shown only when the docker.io cache has run: does the daemon pull through it
    "docker-mirror": CheckSpec("docker.io cache", ("docker",)),
}


@dataclass(frozen=True)
class CheckResult:
    name: str  # stable id, a key of CHECK_TABLE
    title: str
    ok: bool
    required_for: tuple[str, ...]
    found: str | None = None  # a path, or what the check saw
    version: str | None = None
    problem: str | None = None
    fix: str | None = None
    advisory: bool = False  # a failure warns; it never blocks a backend

    @classmethod
    def passed(cls, name: str, found: str | None = None, *, version: str | None = None) -> Self:
        spec = CHECK_TABLE[name]
        return cls(name, spec.title, True, spec.required_for, found=found, version=version)

    @classmethod
    def failed(
        cls,
        name: str,
        problem: str,
        fix: str | None,
        *,
        found: str | None = None,
        version: str | None = None,
        advisory: bool = False,
    ) -> Self:
        spec = CHECK_TABLE[name]
        return cls(
            name,
            spec.title,
            False,
            spec.required_for,
            found=found,
            version=version,
            problem=problem,
            fix=fix,
            advisory=advisory,
        )

    @classmethod
    def crashed(cls, name: str, exc: Exception) -> Self:
        """A check that raised: reported under its function's name, blocking every backend."""
        return cls(
            name,
            name,
            False,
            BOTH,
            problem=f"The check itself failed: {type(exc).__name__}: {exc}",
            fix="Re-run with --verbose and report it.",
        )

    def level(self, backend: str) -> str:
        """ok | warning | error, for the backend being checked."""
        if self.ok:
            return "ok"
        if self.advisory or not needed_by(self.required_for, backend):
            return "warning"
        return "error"

    def to_dict(self, backend: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "ok": self.ok,
            "level": self.level(backend),
            "required_for": list(self.required_for),
            "found": self.found,
            "version": self.version,
            "problem": self.problem,
            "fix": self.fix,
        }


def needed_by(required_for: tuple[str, ...], backend: str) -> bool:
    """Whether ``backend`` needs a prerequisite; auto needs what its Docker fallback needs."""
    return ("docker" if backend == "auto" else backend) in required_for


@dataclass(frozen=True)
class DoctorInputs:
    config: Settings
    runner: Runner
    paths: Paths
    platform: str = sys.platform
    inotify_dir: Path = INOTIFY_DIR
    disk_warn_bytes: int = DISK_WARN_BYTES
    tool_timeout: float = TOOL_TIMEOUT
    backend: str = "auto"  # the backend checked (`--backend`, else the config's)


Check = Callable[[DoctorInputs], list[CheckResult]]


def _locate(inputs: DoctorInputs, tool: str, name: str = "") -> str | CheckResult:
    """The tool's path, or the failed result (with its install hint) when it is not on PATH."""
    try:
        return inputs.runner.which(tool)
    except ToolNotFound as exc:
        return CheckResult.failed(name or tool, exc.message, exc.hint)


# --- Docker -----------------------------------------------------------------------------


def check_docker(inputs: DoctorInputs) -> list[CheckResult]:
    """The CLI and the daemon from one `docker version` (its JSON has both, or Server null)."""
    path = _locate(inputs, "docker", "docker-cli")
    if isinstance(path, CheckResult):
        daemon = CheckResult.failed(
            "docker-daemon",
            "Not checked: the docker CLI is missing.",
            "Install Docker first (see above).",
        )
        return [path, daemon]
    found = Docker(inputs.runner, timeout=inputs.tool_timeout).version()
    client = str(found.client) if found.client else None
    return [CheckResult.passed("docker-cli", path, version=client), _daemon_result(found)]


def _daemon_result(found: DockerVersion) -> CheckResult:
    server = found.server
    if isinstance(server, PalletError):
        return CheckResult.failed("docker-daemon", server.message, server.hint)
    if server.numbers is not None and not versions.at_least(
        server.numbers, versions.MIN_DOCKER_SERVER
    ):
        return CheckResult.failed(
            "docker-daemon",
            f"Docker Engine {server} is older than "
            f"{versions.show(versions.MIN_DOCKER_SERVER)[1:]}, the oldest pallet-dev supports.",
            "Upgrade Docker: https://docs.docker.com/engine/install/",
            version=server.raw,
        )
    return CheckResult.passed("docker-daemon", "answers", version=server.raw)


# --- kind, helm, kubectl ---------------------------------------------------------------


def check_kind(inputs: DoctorInputs) -> list[CheckResult]:
    path = _locate(inputs, "kind")
    if isinstance(path, CheckResult):
        return [path]
    try:
        found = Kind(inputs.runner).version(timeout=inputs.tool_timeout)
    except VersionUnreadable as exc:
        return [CheckResult.failed("kind", exc.message, exc.hint, found=path)]
    shown = versions.show(found)
    if not versions.at_least(found, versions.MIN_KIND):
        problem = (
            f"kind {shown} is too old: {versions.show(versions.MIN_KIND)} or newer "
            "is needed (per-host registry config through containerd's config_path)."
        )
        return [CheckResult.failed("kind", problem, INSTALL_PINNED, found=path, version=shown)]
    if not versions.at_least(found, versions.PINNED_KIND):
        problem = (
            f"kind {shown} is older than {versions.show(versions.PINNED_KIND)}, which "
            "pallet-dev pins; its default node image is built for that release and may "
            "not boot on older kind."
        )
        return [
            CheckResult.failed(
                "kind", problem, INSTALL_PINNED, found=path, version=shown, advisory=True
            )
        ]
    return [
        CheckResult.passed("kind", path, version=shown),
        *_node_image_matches_kind(inputs.config.kind.node_image, found),
    ]


def _node_image_matches_kind(image: str, kind: versions.Version) -> list[CheckResult]:
    """A known release's default node image on another kind release: say so (advisory)."""
    built_for = versions.kind_release_of_node_image(image)
    if built_for is None:
        return []
    short = image.split("@", 1)[0]
    if built_for == kind[:2]:
        return [CheckResult.passed("kind-node-image", short)]
    expected = versions.KIND_NODE_IMAGES.get(kind[:2])
    problem = (
        f"The node image {short} is kind {versions.show(built_for)}'s default, but "
        f"kind {versions.show(kind)} is in use; node images are built per kind release."
    )
    fix = (
        f"Set kind.node_image to {expected} (kind {versions.show(kind)}'s default), "
        if expected
        else "Set kind.node_image to an image from your kind release's notes, "
    ) + f"or install kind {versions.show(built_for)}."
    return [CheckResult.failed("kind-node-image", problem, fix, found=short, advisory=True)]


def check_helm(inputs: DoctorInputs) -> list[CheckResult]:
    path = _locate(inputs, "helm")
    if isinstance(path, CheckResult):
        return [path]
    helm = Helm(inputs.runner, kube_context=inputs.config.kube_context)
    found: HelmVersion | None
    try:
        found = helm.version(timeout=inputs.tool_timeout)
        said = found.raw[:40]
    except (CommandFailed, CommandTimeout, VersionUnreadable) as exc:
        found, said = None, _what_helm_said(exc)
    if found is None or found.major not in versions.HELM_MAJORS:
        majors = " or ".join(f"{major}.x" for major in versions.HELM_MAJORS)
        return [
            CheckResult.failed(
                "helm",
                f"Helm {majors} is needed; `helm version` says {said or 'no output'!r}.",
                INSTALL_HINTS["helm"],
                found=path,
                version=found.raw if found else None,
            )
        ]
    return [CheckResult.passed("helm", path, version=found.raw)]


def _what_helm_said(exc: CommandFailed | CommandTimeout | VersionUnreadable) -> str:
    """Helm.version() raises as `up` needs it to; the report quotes the tool's own words,
    or the runner's sentence when helm hung or could not start (an OSError behind it)."""
    if isinstance(exc, CommandTimeout) or isinstance(exc.__cause__, OSError):
        return last_line(exc.message)
    return exc.stdout.strip()[:40] or last_line(exc.stderr)


def check_kubectl(inputs: DoctorInputs) -> list[CheckResult]:
    path = _locate(inputs, "kubectl")
    if isinstance(path, CheckResult):
        return [path]
    kubectl = Kubectl(inputs.runner, context=inputs.config.kube_context)
    try:
        client: versions.ToolVersion | None = kubectl.version(timeout=inputs.tool_timeout)
    except VersionUnreadable:
        client = None
    cluster = versions.node_image_kubernetes(inputs.config.kind.node_image)
    if client is None or client.numbers is None or cluster is None:
        # present; without both versions the skew cannot be judged
        return [CheckResult.passed("kubectl", path, version=client.raw if client else None)]
    skew = versions.kubectl_skew(client.numbers, cluster)
    if skew > versions.KUBECTL_MINOR_SKEW:
        wanted = f"{cluster[0]}.{cluster[1]}"
        problem = (
            f"kubectl {client} is {skew} minor versions from the cluster's Kubernetes "
            f"{wanted} (supported skew: ±{versions.KUBECTL_MINOR_SKEW})."
        )
        fix = f"Install kubectl v{wanted}: https://kubernetes.io/docs/tasks/tools/"
        return [
            CheckResult.failed(
                "kubectl", problem, fix, found=path, version=client.raw, advisory=True
            )
        ]
    return [CheckResult.passed("kubectl", path, version=client.raw)]
