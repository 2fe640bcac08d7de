"""`gc --mirrors` on the kind backend: the caches' Deployment scaled to 0 while they change.

The chart runs every cache as a container of one Pod (templates/mirrors.yaml), each with
its storage in its own folder under the host data folder (``_mirrors/<slug>``, the kind
node mounts it; the Pod writes as the user's uid). So pallet-dev prunes those folders on
this host (mirror_prune.py) while the Deployment has no replica: no cache serves, none
holds its scheduler state in memory. When no cache has anything to delete, the Pod is not
stopped at all.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pallet_dev.backends.base import MirrorGc, PlanStep
from pallet_dev.backends.kind_gc import (
    StoppedDeployment,
    open_cluster,
    release_values,
    replicas_of,
    scaled_to_zero,
)
from pallet_dev.backends.kind_mirrors import cache_folder
from pallet_dev.backends.kind_status import folder_size
from pallet_dev.backends.steps import Deadline
from pallet_dev.chart.inputs import NAMESPACE, RELEASE, chart_fullname
from pallet_dev.mirror_prune import apply_prune, plan_prune
from pallet_dev.output import Steps, plural

if TYPE_CHECKING:
    from pallet_dev.backends.kind import KindBackend

MIRRORS_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=mirrors"


def _stopped(deployment: str) -> StoppedDeployment:
    return StoppedDeployment(deployment, MIRRORS_SELECTOR, "caches'", "cache", "no cache serves")


def _deployment(backend: KindBackend) -> str:
    values = release_values(backend, "the caches' storage")
    return f"{chart_fullname(values)}-mirrors"


def _plans(backend: KindBackend, older_than: timedelta | None, now: datetime) -> list[MirrorGc]:
    reports = []
    for mirror in backend.config.mirrors:
        folder = cache_folder(backend.data_dir, mirror)
        found = plan_prune(folder, now=now, older_than=older_than)
        size = folder_size(folder) if folder.is_dir() else None
        reports.append(MirrorGc(mirror.upstream, f"folder {folder}", found, bytes_before=size))
    return reports


def plan(backend: KindBackend, *, older_than: timedelta | None, now: datetime) -> list[MirrorGc]:
    reports = _plans(backend, older_than, now)
    if all(report.plan.empty for report in reports):
        return reports
    kubectl = backend.kubectl()
    pruning = PlanStep("Delete the listed repositories, blobs and scheduler entries", [])
    steps = tuple(_stopped(_deployment(backend)).plan(kubectl, 1, pruning))
    return [replace(report, steps=steps) if not report.plan.empty else report for report in reports]


def clean(
    backend: KindBackend,
    *,
    older_than: timedelta | None,
    now: datetime,
    steps: Steps,
    timeout: float,
) -> list[MirrorGc]:
    first = _plans(backend, older_than, now)
    if all(report.plan.empty for report in first):
        return first  # nothing to delete: the caches keep serving
    deployment = _deployment(backend)
    deadline = Deadline(timeout)
    kubectl = open_cluster(backend, deadline)
    replicas = replicas_of(kubectl, deployment, MIRRORS_SELECTOR)
    stopped = time.monotonic()
    reports: list[MirrorGc] = []
    with scaled_to_zero(kubectl, _stopped(deployment), replicas, steps, deadline):
        # read again with the caches stopped: the first look was while they served
        for mirror, report in zip(backend.config.mirrors, _plans(backend, older_than, now)):
            found = report.plan
            folder = cache_folder(backend.data_dir, mirror)
            with steps.step(
                f"Deleting {plural(len(found.removed), 'repository', 'repositories')} and "
                f"{plural(len(found.blobs), 'blob')} from the {report.upstream} cache"
            ):
                removed = apply_prune(folder, found) if not found.empty else 0
            reports.append(replace(report, bytes_removed=removed))
    method = (
        f"the caches' Deployment {NAMESPACE}/{deployment} (all caches, one Pod) was scaled to 0 "
        "while pallet-dev pruned their folders in the host data folder"
    )
    seconds = time.monotonic() - stopped
    done = []
    for mirror, report in zip(backend.config.mirrors, reports):
        folder = cache_folder(backend.data_dir, mirror)
        after = folder_size(folder) if folder.is_dir() else None
        done.append(replace(report, method=method, seconds_stopped=seconds, bytes_after=after))
    return done
