"""The helm CLI (3.x and 4.x): version detection, flags per major, release state as JSON.

Helm 4 renamed ``--atomic`` to ``--rollback-on-failure`` and made ``--wait`` take a
strategy (``--wait=watcher``; Helm 3 rejects the ``=value`` form). The major version
comes from ``helm version --template '{{.Version}}'`` (no cluster needed); every
other command carries ``--kube-context`` (and the kubeconfig pallet-dev keeps), so
the user's current context never decides where a release goes.

Helm exits 1 for every error; :func:`classify_helm_error` turns the known stderr
messages into a sentence and a fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pallet_dev.errors import CommandFailed, OperationFailed, VersionUnreadable
from pallet_dev.runner import Runner

VERSION_TEMPLATE = "{{.Version}}"
# the Kubernetes version `helm template` renders for (the oldest node image we test: 1.34)
DEFAULT_RENDER_KUBE_VERSION = "v1.34.0"
# seconds helm may run past its own --timeout (the rollback of a failed upgrade)
ROLLBACK_GRACE = 30.0
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class HelmVersion:
    raw: str
    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return self.raw


def parse_helm_version(text: str) -> HelmVersion:
    """``v4.2.4`` / ``v3.22.0+gabc`` / ``v4.2`` (a `go install` build) -> HelmVersion."""
    raw = text.strip()
    match = _VERSION.match(raw)
    if match is None:
        raise VersionUnreadable(
            f"Cannot read the Helm version from {raw[:80]!r}.",
            stdout=text,
            hint="Check that `helm` on PATH is Helm 3 or 4 (`helm version`).",
        )
    major, minor, patch = match.groups()
    return HelmVersion(raw, int(major), int(minor), int(patch or 0))


def upgrade_flags(version: HelmVersion) -> list[str]:
    """Roll back on failure and wait for readiness, spelled for this Helm major."""
    if version.major >= 4:
        # Helm 4 applies server-side: a field someone changed with kubectl (`kubectl set
        # image` while debugging) would make every later upgrade fail with a conflict.
        # pallet-dev owns these objects, so its release wins.
        return ["--rollback-on-failure", "--wait=watcher", "--force-conflicts"]
    if version.major == 3:
        return ["--atomic", "--wait"]
    raise OperationFailed(f"Helm {version.raw} is not supported.", hint="Install Helm 3.x or 4.x.")


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration flag value (whole seconds, at least 1)."""
    return f"{max(1, int(seconds))}s"


@dataclass(frozen=True)
class HelmRevision:
    """The latest revision of a release, from `helm history RELEASE --max 1 -o json`.

    History rather than `helm status -o json`: Helm 4's status JSON has no chart
    metadata and embeds every live object, while history prints the same small
    record on both majors (revision, status, chart, app_version, description).
    """

    revision: int
    status: str  # deployed | failed | pending-install | pending-upgrade | superseded | ...
    chart: str  # NAME-VERSION, e.g. pallet-registry-0.1.0
    app_version: str
    description: str
    updated: str

    @property
    def deployed(self) -> bool:
        return self.status == "deployed"

    @classmethod
    def from_history_json(cls, data: Mapping[str, Any]) -> HelmRevision:
        return cls(
            revision=int(data.get("revision") or 0),
            status=str(data.get("status", "unknown")),
            chart=str(data.get("chart", "")),
            app_version=str(data.get("app_version", "")),
            description=str(data.get("description", "")),
            updated=str(data.get("updated", "")),
        )


def classify_helm_error(exc: CommandFailed, *, release: str, namespace: str) -> OperationFailed:
    """Helm exits 1 for everything: tell the known failures apart by stderr."""
    text = exc.stderr.lower()
    if "another operation" in text and "in progress" in text:
        return OperationFailed(
            f"Helm release '{release}' is locked by an earlier operation that did not finish.",
            hint=f"Roll it back (`helm rollback {release} -n {namespace}`) or run "
            "`pallet-dev up --recreate`.",
        )
    if "invalid ownership metadata" in text or ("conflicts" in text and "apply failed" in text):
        return OperationFailed(
            f"Objects of release '{release}' were changed or created outside Helm.",
            hint=f"Delete the conflicting objects in namespace '{namespace}', or run "
            "`pallet-dev up --recreate`.",
        )
    if "values don't meet the specifications of the schema" in text:
        return OperationFailed(
            f"The chart rejected the values: {exc.stderr_tail}",
            hint="Fix the --values / --set overrides (see charts/pallet-registry/values.yaml).",
        )
    if "context deadline exceeded" in text or "timed out waiting" in text:
        return OperationFailed(
            f"Helm release '{release}' did not become ready in time and was rolled back: "
            f"{exc.stderr_tail}",
            hint=f"See `kubectl get pods -n {namespace}` and `kubectl describe pods -n "
            f"{namespace}`; retry with a larger --timeout.",
        )
    if "kubernetes cluster unreachable" in text:
        return OperationFailed(
            f"Helm cannot reach the cluster: {exc.stderr_tail}",
            hint="Check the cluster is running (`kind get clusters`, `docker ps`).",
        )
    return OperationFailed(str(exc), hint=f"See `helm history {release} -n {namespace}`.")


class Helm:
    """Adapter over one helm binary, bound to one kubeconfig context."""

    def __init__(
        self,
        runner: Runner,
        *,
        kube_context: str,
        kubeconfig: str | None = None,
        binary: str = "helm",
        create_namespace: bool = True,
    ) -> None:
        self.runner = runner
        self.kube_context = kube_context
        self.kubeconfig = kubeconfig
        self.binary = binary
        # False on a shared cluster: an install's --create-namespace asks for `create` on
        # namespaces (cluster-wide) even when the namespace exists
        self.create_namespace = create_namespace
        self._version: HelmVersion | None = None

    def _cluster_flags(self, namespace: str) -> list[str]:
        flags = ["--namespace", namespace, "--kube-context", self.kube_context]
        if self.kubeconfig:
            flags += ["--kubeconfig", self.kubeconfig]
        return flags

    def version_argv(self) -> list[str]:
        return [self.binary, "version", "--template", VERSION_TEMPLATE]

    def version(self, *, timeout: float = 20.0) -> HelmVersion:
        """Asked once per adapter; a failed call raises as any other (CommandFailed or
        CommandTimeout, which `up` reports as they are), unreadable output VersionUnreadable."""
        if self._version is None:
            out = self.runner.run(self.version_argv(), timeout=timeout, step="helm version")
            self._version = parse_helm_version(out.stdout)
        return self._version

    def history_argv(self, release: str, namespace: str) -> list[str]:
        return [
            self.binary,
            "history",
            release,
            *self._cluster_flags(namespace),
            "--max",
            "1",
            "-o",
            "json",
        ]

    def latest_revision(
        self, release: str, namespace: str, *, timeout: float = 30.0
    ) -> HelmRevision | None:
        """The release's newest revision, or None when there is no such release."""
        try:
            out = self.runner.run(
                self.history_argv(release, namespace), timeout=timeout, step="helm history"
            ).stdout
        except CommandFailed as exc:
            if "release: not found" in exc.stderr.lower():
                return None
            raise classify_helm_error(exc, release=release, namespace=namespace) from exc
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            raise OperationFailed(
                f"`helm history -o json` printed output that is not JSON: {out[:200]!r}."
            ) from None
        if not isinstance(data, list) or not data or not isinstance(data[-1], dict):
            return None
        return HelmRevision.from_history_json(data[-1])

    def rollback_argv(self, release: str, namespace: str) -> list[str]:
        """Back to the previous revision (a new revision; clears a pending one)."""
        return [self.binary, "rollback", release, *self._cluster_flags(namespace)]

    def clear_pending(
        self, revision: HelmRevision, release: str, namespace: str, *, timeout: float
    ) -> None:
        """Unlock a release an interrupted helm left ``pending-*``: every upgrade refuses
        it ("another operation is in progress"). A first install that never finished is
        uninstalled, anything else rolled back to the revision before it."""
        first = revision.status == "pending-install"
        argv = (
            self.uninstall_argv(release, namespace, timeout)
            if first
            else self.rollback_argv(release, namespace)
        )
        try:
            self.runner.run(argv, timeout=timeout, step=f"helm {argv[1]}")
        except CommandFailed as exc:
            raise classify_helm_error(exc, release=release, namespace=namespace) from exc

    def upgrade_install_argv(
        self,
        release: str,
        chart: str,
        namespace: str,
        *,
        values_files: Sequence[str],
        timeout: float,
        description: str,
        version: HelmVersion,
    ) -> list[str]:
        argv = [
            self.binary,
            "upgrade",
            "--install",
            release,
            chart,
            *self._cluster_flags(namespace),
        ]
        if self.create_namespace:
            argv.append("--create-namespace")
        for values_file in values_files:
            argv += ["--values", values_file]
        argv += [
            *upgrade_flags(version),
            "--timeout",
            go_duration(timeout),
            "--description",
            description,
            "--output",
            "json",
        ]
        return argv

    def upgrade_install(
        self,
        release: str,
        chart: str,
        namespace: str,
        *,
        values_files: Sequence[str],
        timeout: float,
        description: str,
    ) -> int:
        """Install or upgrade; the new revision number."""
        version = self.version()
        argv = self.upgrade_install_argv(
            release,
            chart,
            namespace,
            values_files=values_files,
            timeout=timeout,
            description=description,
            version=version,
        )
        try:
            # helm gives up at --timeout and then rolls back; killing it during the
            # rollback would leave the release locked, so it gets a grace period
            out = self.runner.run(
                argv, timeout=timeout + ROLLBACK_GRACE, step="helm upgrade --install"
            ).stdout
        except CommandFailed as exc:
            raise classify_helm_error(exc, release=release, namespace=namespace) from exc
        try:
            return int(json.loads(out).get("version") or 0)
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            raise OperationFailed(
                f"`helm upgrade -o json` printed output that is not JSON: {out[:200]!r}."
            ) from None

    def uninstall_argv(self, release: str, namespace: str, timeout: float) -> list[str]:
        return [
            self.binary,
            "uninstall",
            release,
            *self._cluster_flags(namespace),
            "--wait",
            "--timeout",
            go_duration(timeout),
        ]

    def uninstall(self, release: str, namespace: str, *, timeout: float) -> bool:
        """Uninstall the release; False when there was none."""
        try:
            self.runner.run(
                self.uninstall_argv(release, namespace, timeout),
                timeout=timeout + ROLLBACK_GRACE,
                step="helm uninstall",
            )
        except CommandFailed as exc:
            if "not found" in exc.stderr.lower():
                return False
            raise classify_helm_error(exc, release=release, namespace=namespace) from exc
        return True

    def render_argv(
        self,
        release: str,
        chart: str,
        namespace: str,
        *,
        values_files: Sequence[str],
        version: HelmVersion,
        kube_version: str = DEFAULT_RENDER_KUBE_VERSION,
    ) -> list[str]:
        """Render the chart client-side, without any cluster.

        Helm 4: ``install --dry-run=client`` works offline (``upgrade --install
        --dry-run`` still asks the cluster for the release history). Helm 3:
        ``install --dry-run=client`` also contacts the cluster, so ``template``, told
        the Kubernetes version (a `go install` build of Helm 3 assumes v1.20, which
        the chart's kubeVersion rejects); Helm 4's default is recent enough.
        """
        values: list[str] = []
        for values_file in values_files:
            values += ["--values", values_file]
        if version.major >= 4:
            return [
                self.binary,
                "install",
                release,
                chart,
                *self._cluster_flags(namespace),
                *values,
                "--dry-run=client",
                "--output",
                "json",
            ]
        return [
            self.binary,
            "template",
            release,
            chart,
            *self._cluster_flags(namespace),
            *values,
            "--skip-tests",
            f"--kube-version={kube_version}",
        ]

    def render(
        self,
        release: str,
        chart: str,
        namespace: str,
        *,
        values_files: Sequence[str],
        timeout: float = 60.0,
    ) -> str:
        """The rendered manifests as one multi-document YAML text (test hooks left out)."""
        version = self.version()
        argv = self.render_argv(
            release, chart, namespace, values_files=values_files, version=version
        )
        try:
            out = self.runner.run(argv, timeout=timeout, step="helm render").stdout
        except CommandFailed as exc:
            raise classify_helm_error(exc, release=release, namespace=namespace) from exc
        if version.major < 4:
            return out
        try:
            return str(json.loads(out)["manifest"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise OperationFailed(
                f"`helm install --dry-run=client -o json` printed unexpected output: {out[:200]!r}."
            ) from None
