"""`gc --mirrors` on the Docker backend: each cache container stopped while its volume changes.

A cache's storage is a Docker volume, and the registry image has no shell to delete files
with, so pallet-dev works on copies (`docker cp` keeps modification times):

- without ``--older-than``: the container and its volume are removed and the container is
  started again at the same host port on a fresh volume (`up`'s own start);
- with it: the repositories' links are copied out first (small) to see whether anything
  is old; if so the container is stopped, its whole storage copied to a private folder,
  pruned there (mirror_prune.py), and copied onto a fresh volume of a new container of the
  same spec before it starts. Nothing old: the cache is not stopped.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pallet_dev.backends.base import MirrorGc, PlanStep
from pallet_dev.backends.docker_gc import STOP_GRACE
from pallet_dev.backends.docker_mirrors import DATA_PATH
from pallet_dev.backends.steps import Deadline
from pallet_dev.errors import OperationFailed
from pallet_dev.mirror_prune import SCHEDULER_STATE, V2, PrunePlan, apply_prune, plan_prune
from pallet_dev.output import Steps, plural

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pallet_dev.backends.docker import DockerBackend
    from pallet_dev.backends.docker_mirrors import DockerMirrors
    from pallet_dev.settings import MirrorSettings

COPY_TIMEOUT = 600.0


@contextmanager
def _private_folder(backend: DockerBackend) -> Iterator[Path]:
    backend.paths.state_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="mirror-gc-", dir=backend.paths.state_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy_links(backend: DockerBackend, name: str, root: Path) -> None:
    """The repositories' folders and the scheduler state: links only, no blob bytes."""
    target = root / V2
    target.mkdir(parents=True)
    docker = backend.docker
    docker.copy(f"{name}:{DATA_PATH}/{V2.as_posix()}/repositories", str(target), timeout=120.0)
    docker.copy(f"{name}:{DATA_PATH}/{SCHEDULER_STATE}", str(root), timeout=30.0)


def _steps(mirrors: DockerMirrors, mirror: MirrorSettings, older: bool) -> tuple[PlanStep, ...]:
    name, volume = mirrors.name(mirror), mirrors.volume(mirror)
    run = mirrors.spec(mirror, None).run_argv()
    fresh = PlanStep(
        "Start the cache again at its host port on a fresh volume", run, detail="as `up` does"
    )
    if not older:
        return (
            PlanStep(
                "Remove the cache container",
                ["docker", "container", "rm", "--force", "--volumes", name],
            ),
            PlanStep("Remove its volume", ["docker", "volume", "rm", volume]),
            fresh,
        )
    stop = ["docker", "container", "stop", "--time", str(STOP_GRACE), name]
    return (
        PlanStep("Stop the cache container (no pull is served meanwhile)", stop),
        PlanStep(
            "Copy its storage to a private folder",
            mirrors.docker.copy_argv(f"{name}:{DATA_PATH}/.", "<folder>"),
        ),
        PlanStep("Delete the listed repositories, blobs and their scheduler entries there", []),
        PlanStep("Remove the container and its volume", ["docker", "volume", "rm", volume]),
        fresh,
        PlanStep(
            "Stop it, copy the pruned storage in, start it",
            mirrors.docker.copy_argv("<folder>/.", f"{name}:{DATA_PATH}"),
        ),
    )


def plan(backend: DockerBackend, *, older_than: timedelta | None, now: datetime) -> list[MirrorGc]:
    mirrors = backend.mirrors
    existing = mirrors.existing()
    sizes = backend.volume_sizes()
    reports = []
    for mirror in backend.config.mirrors:
        name = mirrors.name(mirror)
        with _private_folder(backend) as root:
            if name in existing:
                _copy_links(backend, name, root)
            found = plan_prune(root, now=now, older_than=older_than)
        volume = mirrors.volume(mirror)
        steps = _steps(mirrors, mirror, older_than is not None) if not found.empty else ()
        storage = f"volume {volume}"
        reports.append(
            MirrorGc(mirror.upstream, storage, found, steps, bytes_before=sizes.get(volume))
        )
    return reports


def clean(
    backend: DockerBackend,
    *,
    older_than: timedelta | None,
    now: datetime,
    steps: Steps,
    timeout: float,
) -> list[MirrorGc]:
    mirrors = backend.mirrors
    deadline = Deadline(timeout)
    existing = mirrors.existing()
    before = backend.volume_sizes()
    reports = []
    for mirror in backend.config.mirrors:
        name, volume = mirrors.name(mirror), mirrors.volume(mirror)
        info = existing.get(name)
        with _private_folder(backend) as root:
            if info is not None:
                _copy_links(backend, name, root)
            found = plan_prune(root, now=now, older_than=older_than)
            report = MirrorGc(mirror.upstream, f"volume {volume}", found)
            if info is None or found.empty:  # nothing to delete: the cache keeps running
                reports.append(replace(report, bytes_before=before.get(volume)))
                continue
            started = time.monotonic()
            if older_than is None:
                removed = _empty(backend, mirror, steps, deadline)
                method = (
                    f"the cache container {name} was removed with its volume and started "
                    "again on a fresh one"
                )
            else:
                found, removed = _prune(backend, mirror, steps, deadline, now, older_than, root)
                method = (
                    f"the cache container {name} was stopped while pallet-dev pruned a copy of "
                    "its storage, which it copied onto a fresh volume"
                )
            if info.running:
                _await(backend, name, deadline)
            else:
                backend.docker.stop(name, grace=STOP_GRACE)
                method += " (then stopped again, as it was)"
        reports.append(
            replace(
                report,
                plan=found,
                method=method,
                seconds_stopped=time.monotonic() - started,
                bytes_before=before.get(volume),
                bytes_removed=removed,
            )
        )
    after = backend.volume_sizes()
    return [
        (
            replace(report, bytes_after=after.get(report.storage.removeprefix("volume ")))
            if report.method
            else report
        )
        for report in reports
    ]


def _empty(
    backend: DockerBackend, mirror: MirrorSettings, ui: Steps, deadline: Deadline
) -> int | None:
    mirrors = backend.mirrors
    name, volume = mirrors.name(mirror), mirrors.volume(mirror)
    with ui.step(f"Removing the cache container {name} and its volume {volume}"):
        backend.docker.remove(name)
        backend.docker.volume_remove(volume)
    with ui.step(f"Starting the cache {name} again on a fresh volume"):
        mirrors.start_fresh(mirror, deadline)
    return None  # measured by the volume's size before and after


def _prune(
    backend: DockerBackend,
    mirror: MirrorSettings,
    ui: Steps,
    deadline: Deadline,
    now: datetime,
    older_than: timedelta,
    root: Path,
) -> tuple[PrunePlan, int]:
    """Stop, copy out, prune the copy, move it onto a fresh volume, start."""
    mirrors, docker = backend.mirrors, backend.docker
    name, volume = mirrors.name(mirror), mirrors.volume(mirror)
    limit = deadline.cap(COPY_TIMEOUT, "copying a cache's storage")
    with ui.step(f"Stopping the cache container {name} (it serves no pull meanwhile)"):
        docker.stop(name, grace=STOP_GRACE)
    try:
        with ui.step(f"Copying the storage of {name} to a private folder"):
            copy = root / "copy"
            copy.mkdir()
            docker.copy(f"{name}:{DATA_PATH}/.", str(copy), timeout=limit)
        # read again with the cache stopped: the first look was while it served
        found = plan_prune(copy, now=now, older_than=older_than)
        with ui.step(
            f"Deleting {plural(len(found.removed), 'repository', 'repositories')} and "
            f"{plural(len(found.blobs), 'blob')} from the copy"
        ):
            removed = apply_prune(copy, found)
    except BaseException:
        docker.start(name)
        raise
    with ui.step(f"Copying the pruned storage onto a fresh volume {volume}"):
        docker.remove(name)
        docker.volume_remove(volume)
        mirrors.start_fresh(mirror, deadline)
        docker.stop(name, grace=STOP_GRACE)  # nothing written yet: its storage was empty
        docker.copy(f"{copy}/.", f"{name}:{DATA_PATH}", timeout=limit)
        docker.start(name)
    return found, removed


def _await(backend: DockerBackend, name: str, deadline: Deadline) -> None:
    mirrors = backend.mirrors
    port = mirrors.published_ports([name]).get(name)
    warning = mirrors.await_ready({name: port}, deadline) if port else None
    if port is None or warning is not None:
        raise OperationFailed(
            f"The cache container {name} does not answer after `gc` cleaned it.",
            hint=f"See `docker logs {name}`; `pallet-dev up` starts it again.",
        )
