"""`pallet-dev status` on the kind backend: the cluster, release, registry pod and claim."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pallet_dev.backends.base import BackendStatus, DataLocation
from pallet_dev.backends.kind_cluster import CAP_QUICK, ensure_kubeconfig
from pallet_dev.backends.steps import Deadline
from pallet_dev.chart.constants import CHART_NAME
from pallet_dev.chart.inputs import NAMESPACE, RELEASE, RELEASE_SELECTOR
from pallet_dev.chart.release import DESCRIPTION_PREFIX
from pallet_dev.errors import CommandFailed, CommandTimeout, PalletError

if TYPE_CHECKING:
    from pallet_dev.backends.kind import KindBackend

T = TypeVar("T")


def kind_status(backend: KindBackend) -> BackendStatus:
    """What exists of the environment on kind; a failed query is recorded, not raised."""
    report = _report(backend)
    from pallet_dev.backends.kind_mirrors import MIRRORS_FOLDER, status_rows

    folder = backend.data_dir
    data = None
    if folder.is_dir():
        # the registry's own data: the caches' folders inside it are reported per cache
        size = folder_size(folder, skip=MIRRORS_FOLDER)
        data = DataLocation(str(folder), f"data folder {folder}", size)
    version = (report.get("release") or {}).get("app_version")
    config = backend.config
    caches = status_rows(config, folder, bool(report["exists"])) if config.mirrors else []
    return BackendStatus(
        bool(report["exists"]),
        report,
        version=str(version) if version else None,
        data=data,
        mirrors=caches,
    )


def _report(backend: KindBackend) -> dict[str, Any]:
    report: dict[str, Any] = {
        "exists": False,
        "cluster": {"name": backend.cluster, "context": backend.context},
        "release": None,
        "registry_pod": None,
        "pvc": None,
        "endpoint": backend.endpoint,
        "data_dir": {"path": str(backend.data_dir), "exists": backend.data_dir.is_dir()},
    }
    kind = backend.kind()
    try:
        if not kind.cluster_exists(backend.cluster):
            return report
    except (CommandFailed, CommandTimeout) as exc:
        report["error"] = exc.message
        return report
    report["exists"] = True
    cluster = report["cluster"]
    try:
        ensure_kubeconfig(backend, kind, Deadline(CAP_QUICK))
    except PalletError as exc:
        cluster["error"] = exc.message
        return report
    kubectl = backend.kubectl()
    nodes = _attempt(lambda: kubectl.get_nodes(), cluster)
    if nodes is not None:
        cluster["nodes"] = [{"name": n.name, "ready": n.ready} for n in nodes]
        cluster["nodes_ready"] = bool(nodes) and all(n.ready for n in nodes)
    release_report: dict[str, Any] = {}
    latest = _attempt(lambda: backend.helm().latest_revision(RELEASE, NAMESPACE), release_report)
    if latest is not None:
        chart_version = latest.chart.removeprefix(f"{CHART_NAME}-")
        release_report.update(
            name=RELEASE,
            namespace=NAMESPACE,
            revision=latest.revision,
            status=latest.status,
            chart=latest.chart,
            chart_version=chart_version,
            app_version=latest.app_version,
            updated=latest.updated,
            managed_by_pallet_dev=latest.description.startswith(DESCRIPTION_PREFIX),
        )
    report["release"] = release_report or None
    pod_report: dict[str, Any] = {}
    pods = _attempt(lambda: kubectl.get_pods(NAMESPACE, RELEASE_SELECTOR), pod_report)
    if pods:
        pod = pods[0]
        pod_report.update(
            name=pod.name,
            phase=pod.phase,
            ready=pod.ready,
            restarts=pod.restarts,
            waiting_reason=pod.waiting_reason,
        )
    report["registry_pod"] = pod_report or None
    pvc_report: dict[str, Any] = {}
    pvcs = _attempt(lambda: kubectl.get_pvcs(NAMESPACE, RELEASE_SELECTOR), pvc_report)
    if pvcs:
        pvc = pvcs[0]
        pvc_report.update(
            name=pvc.name, phase=pvc.phase, bound=pvc.phase == "Bound", capacity=pvc.capacity
        )
    report["pvc"] = pvc_report or None
    return report


def _attempt(call: Callable[[], T], report: dict[str, Any]) -> T | None:
    """Run one status query; record its error instead of failing the whole status."""
    try:
        return call()
    except PalletError as exc:
        report["error"] = exc.message
        return None


def folder_size(path: Path, *, skip: str = "") -> int | None:
    """Bytes of the files under ``path`` (leaving out its subfolder ``skip``)."""
    total = 0
    try:
        for root, dirs, files in os.walk(path):
            if skip and root == str(path) and skip in dirs:
                dirs.remove(skip)
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    continue
    except OSError:
        return None
    return total
