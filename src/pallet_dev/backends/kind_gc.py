"""`gc` on the kind backend: the registry Deployment scaled to 0 while the collection runs.

The registry's data is the host data folder the kind config bind-mounts into the node
(the chart's hostPath volume), so the collection runs in a one-off container of the same
registry image from the host's Docker on that folder, as on the Docker backend, while no
registry pod runs: nothing can push. Then the Deployment gets its replicas back, and `gc`
waits for the rollout and for `GET /v2/`.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pallet_dev.backends.base import GcResult, PlanStep, UpOptions, collection_output, gc_summary
from pallet_dev.backends.docker import REGISTRY_DATA_PATH, REGISTRY_ENV
from pallet_dev.backends.kind_cluster import CAP_QUICK, ensure_kubeconfig
from pallet_dev.backends.steps import Deadline
from pallet_dev.chart.inputs import NAMESPACE, RELEASE_SELECTOR, chart_fullname
from pallet_dev.errors import CommandFailed, OperationFailed
from pallet_dev.output import Steps
from pallet_dev.tools.docker import Docker

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pallet_dev.backends.kind import KindBackend
    from pallet_dev.tools.kubectl import Kubectl


@dataclass(frozen=True)
class DeployedRegistry:
    """What `up` deployed: the Deployment's name, its image and replicas."""

    deployment: str
    image: str
    replicas: int


def release_values(backend: KindBackend, what: str = "the registry's data") -> dict[str, Any]:
    """The release's values as `up` last wrote them (else as `up` would compute them now),
    when the data is in the host data folder; else `gc` cannot run."""
    try:
        values: dict[str, Any] = json.loads(backend.values_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        values = backend.chart_inputs(UpOptions()).values
    persistence: dict[str, Any] = values.get("persistence") or {}
    if not (persistence.get("enabled") and (persistence.get("hostPath") or {}).get("enabled")):
        raise OperationFailed(
            f"{what[0].upper()}{what[1:]} is not in the host data folder (persistence.hostPath "
            "is off), so pallet-dev cannot collect its garbage.",
            hint="Remove the persistence override from your chart values, or run "
            "`registry garbage-collect` inside the cluster yourself.",
        )
    return values


def _deployed(backend: KindBackend) -> DeployedRegistry:
    values = release_values(backend)
    image_values = values.get("image") or {}
    image = backend.config.registry.image
    if image_values.get("repository") and image_values.get("tag"):
        image = f"{image_values['repository']}:{image_values['tag']}"
    return DeployedRegistry(chart_fullname(values), image, int(values.get("replicaCount", 1)))


def open_cluster(backend: KindBackend, deadline: Deadline) -> Kubectl:
    """kubectl for the environment's cluster, which must exist."""
    kind = backend.kind()
    if not kind.cluster_exists(backend.cluster):
        raise OperationFailed(
            f"The kind cluster '{backend.cluster}' does not exist, so no registry runs.",
            hint="Start the environment with `pallet-dev up`, then run `pallet-dev gc` again.",
        )
    ensure_kubeconfig(backend, kind, deadline)
    return backend.kubectl()


@dataclass(frozen=True)
class StoppedDeployment:
    """A Deployment `gc` scales to 0 while it changes what the pods serve."""

    name: str
    selector: str
    who: str  # "registry", "caches'": in "Scaling the <who> Deployment"
    pod: str  # "registry", "cache": in "Waiting until no <pod> pod runs"
    why: str  # "no push can race gc"

    def plan(self, kubectl: Kubectl, replicas: int, during: PlanStep) -> list[PlanStep]:
        """Scale to 0, wait until no pod runs, ``during``, scale back to ``replicas``."""
        return [
            PlanStep(
                f"Scale the {self.who} Deployment to 0 ({self.why})",
                kubectl.scale_argv(NAMESPACE, self.name, 0),
            ),
            PlanStep(
                f"Wait until no {self.pod} pod runs",
                kubectl.wait_pods_gone_argv(NAMESPACE, self.selector, CAP_QUICK),
            ),
            during,
            PlanStep(
                f"Scale the Deployment back to {replicas} and wait for the rollout",
                kubectl.scale_argv(NAMESPACE, self.name, replicas),
            ),
        ]


@contextmanager
def scaled_to_zero(
    kubectl: Kubectl, target: StoppedDeployment, replicas: int, steps: Steps, deadline: Deadline
) -> Iterator[None]:
    """No pod of ``target`` runs while the block does; its ``replicas`` come back after,
    also when the block fails (a Deployment at 0 already stays there)."""
    with steps.step(f"Scaling the {target.who} Deployment {target.name} to 0 ({target.why})"):
        kubectl.scale(NAMESPACE, target.name, 0, timeout=CAP_QUICK)
    try:
        with steps.step(f"Waiting until no {target.pod} pod runs"):
            kubectl.wait_pods_gone(
                NAMESPACE, target.selector, timeout=deadline.cap(120.0, "the pod stopped")
            )
        yield
    finally:
        if replicas:
            with steps.step(f"Scaling the {target.who} Deployment back to {replicas}"):
                kubectl.scale(NAMESPACE, target.name, replicas, timeout=CAP_QUICK)
                kubectl.rollout_status_of(NAMESPACE, target.name, timeout=120.0)


def replicas_of(kubectl: Kubectl, deployment: str, selector: str) -> int:
    """The Deployment's replicas now; it must exist."""
    found = kubectl.get_deployments(NAMESPACE, selector, timeout=CAP_QUICK)
    current = next((d for d in found if d.get("metadata", {}).get("name") == deployment), None)
    if current is None:
        raise OperationFailed(
            f"The Deployment {NAMESPACE}/{deployment} does not exist.",
            hint="Run `pallet-dev up` to deploy it, then `pallet-dev gc` again.",
        )
    return int((current.get("spec") or {}).get("replicas") or 0)


def gc_argv(backend: KindBackend, image: str, *, delete_untagged: bool) -> list[str]:
    mount = f"type=bind,src={backend.data_dir.absolute()},dst={REGISTRY_DATA_PATH}"
    return Docker.garbage_collect_argv(
        image,
        mount,
        name=f"{backend.cluster}-registry-gc",
        env=REGISTRY_ENV,
        delete_untagged=delete_untagged,
    )


def _stopped(deployment: str) -> StoppedDeployment:
    return StoppedDeployment(
        deployment, RELEASE_SELECTOR, "registry", "registry", "no push can race gc"
    )


def plan(backend: KindBackend, *, delete_untagged: bool) -> list[PlanStep]:
    registry = _deployed(backend)
    collection = PlanStep(
        "Collect garbage in a one-off container of the registry image on the host data folder",
        gc_argv(backend, registry.image, delete_untagged=delete_untagged),
    )
    return [
        *_stopped(registry.deployment).plan(backend.kubectl(), registry.replicas, collection),
        PlanStep("Wait for the registry", [], detail=f"GET {backend.endpoint}/v2/ until 200"),
    ]


def collect(
    backend: KindBackend, *, delete_untagged: bool, steps: Steps, timeout: float
) -> GcResult:
    registry = _deployed(backend)
    deadline = Deadline(timeout)
    kubectl = open_cluster(backend, deadline)
    deployment = registry.deployment
    replicas = replicas_of(kubectl, deployment, RELEASE_SELECTOR)
    argv = gc_argv(backend, registry.image, delete_untagged=delete_untagged)
    stopped = time.monotonic()
    try:
        with scaled_to_zero(kubectl, _stopped(deployment), replicas, steps, deadline):
            with steps.step("Collecting garbage (registry garbage-collect)"):
                limit = deadline.cap(timeout, "collecting garbage")
                output = collection_output(lambda: _run(backend, argv, registry.image, limit))
    finally:
        if replicas:
            backend.await_registry_again(
                steps,
                hint=f"Check `kubectl --context {backend.context} -n {NAMESPACE} get pods`; "
                "`pallet-dev up` converges it.",
            )
    method = (
        f"the registry Deployment {NAMESPACE}/{deployment} was scaled to 0 while a one-off "
        f"container ran the collection on the host data folder {backend.data_dir}"
    )
    return GcResult(method, time.monotonic() - stopped, gc_summary(output))


def _run(backend: KindBackend, argv: list[str], image: str, timeout: float) -> str:
    try:
        return Docker(backend.runner).run_once(argv, timeout=timeout, step="registry gc")
    except CommandFailed as exc:
        if "no such image" not in exc.stderr.lower():
            raise
        raise OperationFailed(
            f"The registry image {image} is not in this host's Docker, so the collection "
            "cannot run beside the cluster.",
            hint=f"Pull or build it on the host (`docker pull {image}`), then run `pallet-dev gc`.",
        ) from None
