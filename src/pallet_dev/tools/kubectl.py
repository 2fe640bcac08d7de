"""The kubectl CLI: argv builders and parsers of its ``-o json`` output.

Every call that talks to a cluster carries ``--context`` (and, when given, the
kubeconfig file pallet-dev keeps for the cluster), so the user's current context
never decides which cluster a command reaches. Text columns are never parsed.
The user's own kubeconfig is edited in :mod:`pallet_dev.tools.kubeconfig`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pallet_dev.errors import CommandFailed, OperationFailed, VersionUnreadable
from pallet_dev.runner import Runner, run_lenient
from pallet_dev.versions import ToolVersion

FIELD_MANAGER = "pallet-dev"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool
    kubelet_version: str = ""


@dataclass(frozen=True)
class PodStatus:
    name: str
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    ready: bool
    restarts: int
    waiting_reason: str | None  # CrashLoopBackOff, ImagePullBackOff, ...
    image: str = ""


@dataclass(frozen=True)
class PvcStatus:
    name: str
    phase: str  # Pending | Bound | Lost
    volume: str
    capacity: str
    storage_class: str


def _items(out: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise OperationFailed(f"`{what}` printed output that is not JSON: {out[:200]!r}.") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise OperationFailed(f"`{what}` printed JSON without an items list.")
    return [item for item in items if isinstance(item, dict)]


def parse_nodes(out: str) -> list[NodeStatus]:
    nodes = []
    for item in _items(out, "kubectl get nodes -o json"):
        conditions = (item.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        info = (item.get("status") or {}).get("nodeInfo") or {}
        nodes.append(
            NodeStatus(
                str((item.get("metadata") or {}).get("name", "")),
                ready,
                str(info.get("kubeletVersion", "")),
            )
        )
    return nodes


def parse_pods(out: str) -> list[PodStatus]:
    pods = []
    for item in _items(out, "kubectl get pods -o json"):
        status = item.get("status") or {}
        containers = status.get("containerStatuses") or []
        waiting = next(
            (
                (c.get("state") or {}).get("waiting", {}).get("reason")
                for c in containers
                if (c.get("state") or {}).get("waiting")
            ),
            None,
        )
        spec_containers = (item.get("spec") or {}).get("containers") or [{}]
        pods.append(
            PodStatus(
                name=str((item.get("metadata") or {}).get("name", "")),
                phase=str(status.get("phase", "Unknown")),
                ready=bool(containers) and all(c.get("ready") for c in containers),
                restarts=sum(int(c.get("restartCount") or 0) for c in containers),
                waiting_reason=str(waiting) if waiting else None,
                image=str(spec_containers[0].get("image", "")),
            )
        )
    return pods


def parse_pvcs(out: str) -> list[PvcStatus]:
    pvcs = []
    for item in _items(out, "kubectl get pvc -o json"):
        spec = item.get("spec") or {}
        status = item.get("status") or {}
        pvcs.append(
            PvcStatus(
                name=str((item.get("metadata") or {}).get("name", "")),
                phase=str(status.get("phase", "Unknown")),
                volume=str(spec.get("volumeName", "")),
                capacity=str((status.get("capacity") or {}).get("storage", "")),
                storage_class=str(spec.get("storageClassName", "")),
            )
        )
    return pvcs


def _not_found(exc: CommandFailed) -> bool:
    return "(notfound)" in exc.stderr.lower().replace(" ", "")


def forbidden(exc: CommandFailed) -> bool:
    """The API server refused the call for lack of an RBAC permission."""
    return "(forbidden)" in exc.stderr.lower().replace(" ", "")


def _object(out: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise OperationFailed(
            f"`kubectl get {what} -o json` printed output that is not JSON: {out[:200]!r}."
        ) from None
    return data if isinstance(data, dict) else {}


class Kubectl:
    """Adapter over kubectl bound to one context (and optionally one kubeconfig file)."""

    def __init__(
        self,
        runner: Runner,
        *,
        context: str,
        kubeconfig: str | None = None,
        binary: str = "kubectl",
    ) -> None:
        self.runner = runner
        self.context = context
        self.kubeconfig = kubeconfig
        self.binary = binary

    def base(self) -> list[str]:
        argv = [self.binary]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        return [*argv, "--context", self.context]

    def _run(self, argv: list[str], *, timeout: float, step: str, input: str | None = None) -> str:
        return self.runner.run(argv, timeout=timeout, step=step, input=input).stdout

    # argv builders
    def version_argv(self) -> list[str]:
        # the client only: no cluster is asked, so no --context
        return [self.binary, "version", "--client", "-o", "json"]

    def get_nodes_argv(self) -> list[str]:
        return [*self.base(), "get", "nodes", "-o", "json"]

    def get_pods_argv(self, namespace: str, selector: str) -> list[str]:
        return [*self.base(), "get", "pods", "--namespace", namespace, "-l", selector, "-o", "json"]

    def get_pvcs_argv(self, namespace: str, selector: str) -> list[str]:
        return [*self.base(), "get", "pvc", "--namespace", namespace, "-l", selector, "-o", "json"]

    def get_configmap_argv(self, namespace: str, name: str) -> list[str]:
        return [*self.base(), "get", "configmap", name, "--namespace", namespace, "-o", "json"]

    def apply_argv(self) -> list[str]:
        return [
            *self.base(),
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={FIELD_MANAGER}",
            "-f",
            "-",
        ]

    def rollout_status_argv(
        self, namespace: str, selector: str, timeout: float, kind: str = "deployment"
    ) -> list[str]:
        return [
            *self.base(),
            "rollout",
            "status",
            kind,
            "--namespace",
            namespace,
            "-l",
            selector,
            f"--timeout={max(1, int(timeout))}s",
        ]

    # calls
    def version(self, *, timeout: float = 20.0) -> ToolVersion:
        """kubectl's own version (``clientVersion.gitVersion``), as it spells it.

        A failed call, a hang or JSON without it raises VersionUnreadable.
        """
        result = run_lenient(
            self.runner, self.version_argv(), timeout=timeout, step="kubectl version"
        )
        try:
            data = json.loads(result.stdout) if result.ok else {}
            git_version = str(((data or {}).get("clientVersion") or {}).get("gitVersion") or "")
        except (ValueError, AttributeError):
            git_version = ""
        if not git_version:
            raise VersionUnreadable(
                "Cannot read kubectl's version from `kubectl version --client -o json`.",
                stdout=result.stdout,
                stderr=result.stderr,
                hint="Check that `kubectl` on PATH is kubectl (`kubectl version --client`).",
            )
        return ToolVersion.of(git_version)

    def get_nodes(self, *, timeout: float = 20.0) -> list[NodeStatus]:
        return parse_nodes(self._run(self.get_nodes_argv(), timeout=timeout, step="get nodes"))

    def get_pods(self, namespace: str, selector: str, *, timeout: float = 20.0) -> list[PodStatus]:
        out = self._run(self.get_pods_argv(namespace, selector), timeout=timeout, step="get pods")
        return parse_pods(out)

    def get_pvcs(self, namespace: str, selector: str, *, timeout: float = 20.0) -> list[PvcStatus]:
        out = self._run(self.get_pvcs_argv(namespace, selector), timeout=timeout, step="get pvc")
        return parse_pvcs(out)

    def get_configmap(
        self, namespace: str, name: str, *, timeout: float = 20.0
    ) -> dict[str, Any] | None:
        try:
            out = self._run(
                self.get_configmap_argv(namespace, name), timeout=timeout, step="get configmap"
            )
        except CommandFailed as exc:
            if _not_found(exc):
                return None
            raise
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            raise OperationFailed(
                f"`kubectl get configmap -o json` printed output that is not JSON: {out[:200]!r}."
            ) from None
        return data if isinstance(data, dict) else None

    def apply(self, manifest: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        """Server-side apply of one object, sent as JSON on stdin."""
        self._run(
            self.apply_argv(), timeout=timeout, step="kubectl apply", input=json.dumps(manifest)
        )

    # --- single objects, by kind and name (namespace None: a cluster-scoped kind) ---------
    def _scope(self, namespace: str | None) -> list[str]:
        return ["--namespace", namespace] if namespace else []

    def get_object_argv(self, kind: str, name: str, namespace: str | None = None) -> list[str]:
        return [*self.base(), "get", kind, name, *self._scope(namespace), "-o", "json"]

    def get_object(
        self, kind: str, name: str, namespace: str | None = None, *, timeout: float = 20.0
    ) -> dict[str, Any] | None:
        """The object as JSON, or None when it does not exist (Forbidden raises)."""
        try:
            out = self._run(
                self.get_object_argv(kind, name, namespace), timeout=timeout, step=f"get {kind}"
            )
        except CommandFailed as exc:
            if _not_found(exc):
                return None
            raise
        return _object(out, kind)

    def create_argv(self) -> list[str]:
        return [*self.base(), "create", f"--field-manager={FIELD_MANAGER}", "-f", "-"]

    def create(self, manifest: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        """Create one object (never updates one), sent as JSON on stdin."""
        self._run(
            self.create_argv(), timeout=timeout, step="kubectl create", input=json.dumps(manifest)
        )

    def delete_argv(self, kind: str, name: str, namespace: str | None = None) -> list[str]:
        return [
            *self.base(),
            "delete",
            kind,
            name,
            *self._scope(namespace),
            "--ignore-not-found",
            "--wait=false",
        ]

    def delete(
        self, kind: str, name: str, namespace: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self._run(self.delete_argv(kind, name, namespace), timeout=timeout, step="kubectl delete")

    def can_i_argv(
        self, verb: str, resource: str, namespace: str | None, subresource: str | None = None
    ) -> list[str]:
        argv = [*self.base(), "auth", "can-i", verb, resource, *self._scope(namespace)]
        return argv + ([f"--subresource={subresource}"] if subresource else [])

    def can_i(
        self,
        verb: str,
        resource: str,
        namespace: str | None,
        subresource: str | None = None,
        *,
        timeout: float = 20.0,
    ) -> tuple[bool, str]:
        """A SelfSubjectAccessReview: whether the context's user may, and kubectl's words."""
        argv = self.can_i_argv(verb, resource, namespace, subresource)
        result = run_lenient(self.runner, argv, timeout=timeout, step="can-i")
        answer = result.stdout.strip().lower()
        if answer.startswith("yes"):
            return True, "yes"
        return False, (result.stderr.strip() or answer or f"exit {result.returncode}")[:300]

    def server_version_argv(self) -> list[str]:
        return [*self.base(), "version", "-o", "json", "--request-timeout=10s"]

    def server_version(self, *, timeout: float = 20.0) -> str:
        """The API server's Kubernetes version (an answer proves the context works)."""
        out = self._run(self.server_version_argv(), timeout=timeout, step="kubectl version")
        try:
            server = json.loads(out).get("serverVersion") or {}
        except (json.JSONDecodeError, AttributeError):
            server = {}
        return str(server.get("gitVersion") or "unknown")

    def view_context_argv(self) -> list[str]:
        """The context's cluster and user alone, files inlined: read locally, no API call."""
        return [*self.base(), "config", "view", "--raw", "--minify", "--flatten", "-o", "json"]

    def view_context(self, *, timeout: float = 20.0) -> str:
        return self._run(self.view_context_argv(), timeout=timeout, step="kubectl config view")

    def annotate_argv(self, namespace: str, target: str, key: str, value: str) -> list[str]:
        return [
            *self.base(),
            "annotate",
            "--namespace",
            namespace,
            target,
            f"{key}={value}",
            "--overwrite",
        ]

    def annotate(
        self, namespace: str, target: str, key: str, value: str, *, timeout: float
    ) -> None:
        self._run(
            self.annotate_argv(namespace, target, key, value), timeout=timeout, step="annotate"
        )

    def rollout_status(
        self, namespace: str, selector: str, *, timeout: float, kind: str = "deployment"
    ) -> None:
        self._run(
            self.rollout_status_argv(namespace, selector, timeout, kind),
            timeout=timeout + 10,
            step="rollout status",
        )

    def get_events_argv(self, namespace: str, object_name: str) -> list[str]:
        return [
            *self.base(),
            "get",
            "events",
            "--namespace",
            namespace,
            "--field-selector",
            f"involvedObject.name={object_name}",
            "-o",
            "json",
        ]

    def recent_events(self, namespace: str, object_name: str, *, limit: int = 3) -> list[str]:
        """The object's newest event messages ("Reason: message"), oldest first."""
        try:
            out = self._run(
                self.get_events_argv(namespace, object_name), timeout=20, step="get events"
            )
            items = _items(out, "kubectl get events -o json")
        except (CommandFailed, OperationFailed):
            return []
        items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return [f"{e.get('reason', '')}: {e.get('message', '')}".strip() for e in items][-limit:]

    def get_deployments_argv(self, namespace: str, selector: str) -> list[str]:
        return [
            *self.base(),
            "get",
            "deployments",
            "--namespace",
            namespace,
            "-l",
            selector,
            "-o",
            "json",
        ]

    def get_deployments(
        self, namespace: str, selector: str, *, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        out = self._run(
            self.get_deployments_argv(namespace, selector), timeout=timeout, step="get deployments"
        )
        return _items(out, "kubectl get deployments -o json")

    def set_image(
        self, namespace: str, deployment: str, container: str, image: str, *, timeout: float
    ) -> None:
        self._run(
            [
                *self.base(),
                "set",
                "image",
                "--namespace",
                namespace,
                f"deployment/{deployment}",
                f"{container}={image}",
            ],
            timeout=timeout,
            step="set image",
        )

    def rollout_undo(self, namespace: str, deployment: str, *, timeout: float) -> None:
        self._run(
            [*self.base(), "rollout", "undo", "--namespace", namespace, f"deployment/{deployment}"],
            timeout=timeout,
            step="rollout undo",
        )

    def rollout_status_of(self, namespace: str, deployment: str, *, timeout: float) -> None:
        self._run(
            [
                *self.base(),
                "rollout",
                "status",
                "--namespace",
                namespace,
                f"deployment/{deployment}",
                f"--timeout={max(1, int(timeout))}s",
            ],
            timeout=timeout + 10,
            step="rollout status",
        )

    def scale_argv(self, namespace: str, deployment: str, replicas: int) -> list[str]:
        return [
            *self.base(),
            "scale",
            "--namespace",
            namespace,
            f"deployment/{deployment}",
            f"--replicas={replicas}",
        ]

    def scale(self, namespace: str, deployment: str, replicas: int, *, timeout: float) -> None:
        self._run(self.scale_argv(namespace, deployment, replicas), timeout=timeout, step="scale")

    def wait_pods_gone_argv(self, namespace: str, selector: str, timeout: float) -> list[str]:
        return [
            *self.base(),
            "wait",
            "--for=delete",
            "pods",
            "--namespace",
            namespace,
            "-l",
            selector,
            f"--timeout={max(1, int(timeout))}s",
        ]

    def wait_pods_gone(self, namespace: str, selector: str, *, timeout: float) -> None:
        """Until no pod matches ``selector`` (none at all is done already)."""
        try:
            self._run(
                self.wait_pods_gone_argv(namespace, selector, timeout),
                timeout=timeout + 10,
                step="wait for pods to go",
            )
        except CommandFailed as exc:
            if "no matching resources found" not in exc.stderr.lower():
                raise

    def logs_argv(
        self, namespace: str, target: str, *, follow: bool = False, tail: int | None = None
    ) -> list[str]:
        argv = [*self.base(), "logs", "--namespace", namespace, target]
        if follow:
            argv.append("--follow")
        if tail is not None:
            argv.append(f"--tail={tail}")
        return argv
