"""`gc` on the Docker backend: the registry container stopped while a one-off container of
the same image runs `registry garbage-collect` on its volume, so no push can race it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pallet_dev.backends.base import GcResult, PlanStep, collection_output, gc_summary
from pallet_dev.backends.steps import Deadline
from pallet_dev.errors import OperationFailed
from pallet_dev.output import Steps
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.docker_types import VolumeMount

if TYPE_CHECKING:
    from pallet_dev.backends.docker import DockerBackend

# seconds `docker stop` gives the registry (and a cache): above REGISTRY_HTTP_DRAINTIMEOUT,
# so pushes in flight finish (or are refused) before the garbage collection starts
STOP_GRACE = 10


def gc_argv(backend: DockerBackend, image: str, *, delete_untagged: bool) -> list[str]:
    from pallet_dev.backends.docker import REGISTRY_DATA_PATH, REGISTRY_ENV

    config = backend.config
    return Docker.garbage_collect_argv(
        image,
        VolumeMount(config.volume_name, REGISTRY_DATA_PATH).mount_arg(),
        name=f"{config.container_name}-gc",
        env=REGISTRY_ENV,
        delete_untagged=delete_untagged,
    )


def plan(backend: DockerBackend, *, delete_untagged: bool) -> list[PlanStep]:
    name = backend.config.container_name
    return [
        PlanStep(
            "Stop the registry container, so no push can race the collection",
            ["docker", "container", "stop", "--time", str(STOP_GRACE), name],
        ),
        PlanStep(
            "Collect garbage in a one-off container of the same image on the same volume",
            gc_argv(backend, backend.config.registry.image, delete_untagged=delete_untagged),
        ),
        PlanStep("Start the registry container again", ["docker", "container", "start", name]),
        PlanStep("Wait for the registry", [], detail=f"GET {backend.endpoint}/v2/ until 200"),
    ]


def collect(
    backend: DockerBackend, *, delete_untagged: bool, steps: Steps, timeout: float
) -> GcResult:
    docker = backend.docker
    name = backend.config.container_name
    info = docker.inspect_container(name)
    if info is None or not backend.ours(info):
        raise OperationFailed(
            f"There is no registry container '{name}' of pallet-dev's to collect garbage in.",
            hint="Start the environment with `pallet-dev up`, then run `pallet-dev gc` again.",
        )
    deadline = Deadline(timeout)
    argv = gc_argv(backend, info.image, delete_untagged=delete_untagged)
    stopped = time.monotonic()
    if info.running:
        with steps.step(f"Stopping the registry container {name} (no push can race gc)"):
            docker.stop(name, grace=STOP_GRACE)
    try:
        with steps.step("Collecting garbage (registry garbage-collect)"):
            limit = deadline.cap(timeout, "collecting garbage")
            output = collection_output(
                lambda: docker.run_once(argv, timeout=limit, step="registry gc")
            )
    finally:
        if info.running:
            with steps.step(f"Starting the registry container {name} again"):
                docker.start(name)
            backend.await_registry_again(
                steps, hint=f"See `docker logs {name}`; `pallet-dev up` starts it."
            )
    method = (
        f"the registry container {name} was stopped while a one-off container ran the "
        "collection on its volume"
        if info.running
        else f"the registry container {name} was not running; the collection ran on its volume"
    )
    return GcResult(method, time.monotonic() - stopped, gc_summary(output))
