"""The kind backend's last steps of `up`: deploy the chart, then wait for the registry.

Steps of :func:`pallet_dev.backends.kind_up.up_steps`, over the same run state.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

from pallet_dev.backends import kind_cluster
from pallet_dev.backends.base import PlanStep
from pallet_dev.backends.kind_cluster import CAP_CREATE, CAP_QUICK
from pallet_dev.chart.constants import CHART_NAME
from pallet_dev.chart.inputs import NAMESPACE, RELEASE, RELEASE_SELECTOR, release_unchanged
from pallet_dev.chart.release import PLAN_HELM_VERSION
from pallet_dev.errors import PalletError, ReadinessTimeout

if TYPE_CHECKING:
    from pallet_dev.backends.kind_up import KindUp
    from pallet_dev.tools.helm import HelmRevision


def plan_deploy(run: KindUp) -> list[PlanStep]:
    b = run.backend
    chart, timeout = run.chart, run.options.timeout
    upgrade = run.helm.upgrade_install_argv(
        RELEASE,
        str(chart.chart_dir),
        NAMESPACE,
        values_files=[str(b.values_path)],
        timeout=timeout,
        description=chart.description,
        version=PLAN_HELM_VERSION,
    )
    return [
        PlanStep(
            "Deploy the chart (only when chart or values changed), waiting for the rollout",
            upgrade,
            detail=f"values file {b.values_path}: {json.dumps(chart.values, sort_keys=True)}"
            "; with Helm 3 `--atomic --wait` replace `--rollback-on-failure --wait=watcher "
            "--force-conflicts`",
        ),
        PlanStep(
            "Check the rollout (when the release was unchanged; helm waits after a deploy)",
            run.kubectl.rollout_status_argv(NAMESPACE, RELEASE_SELECTOR, timeout),
        ),
    ]


def nodes_step_name(run: KindUp) -> str:
    count = len(run.nodes)
    return f"Waiting for {count} node{'' if count == 1 else 's'} to be Ready"


def await_nodes(run: KindUp, *, helm_failed: bool = False) -> None:
    """The background node wait's ✓/✗ line; its error when the nodes never turned Ready.

    Called once Helm is done (its pods ran, so the nodes are Ready within a poll), or
    before the rollout check of an unchanged release. When Helm failed, the node wait is
    reported only if it timed out too (it says more than Helm's timeout); otherwise it
    stops and Helm's error stands.
    """
    waiter = run.node_waiter
    if waiter is None:
        return
    run.node_waiter = None
    # Helm fails at the deadline when the nodes never turn Ready, and the wait a poll before
    # (its last call is bounded by the deadline too: a few seconds of grace for a busy machine)
    waiter.join(2 * run.backend.poll_interval if helm_failed else run.deadline.remaining() + 5.0)
    waiter.stop()
    if waiter.ready:
        run.ui.done(nodes_step_name(run), waiter.elapsed)
        return
    error = waiter.error
    if helm_failed and not isinstance(error, ReadinessTimeout):
        return
    if error is None:  # the deadline passed while the last poll was still out
        error = ReadinessTimeout(
            f"The cluster's nodes were not Ready within {run.deadline.total:g} s.",
            hint=f"See `kubectl --context {run.backend.context} describe nodes`; retry with "
            "a larger --timeout.",
        )
    name = nodes_step_name(run)
    run.ui.failed(name)
    named = run.backend.naming.named(name, error)
    if named is error:
        raise error
    raise named from error


def deploy(run: KindUp) -> None:
    """`helm upgrade --install` (Helm waits for the rollout), unless nothing changed."""
    b = run.backend
    if run.latest is not None and run.latest.status.startswith("pending-"):
        clear_pending(run, run.latest)
    chart, latest, deadline = run.chart, run.latest, run.deadline
    if release_unchanged(latest, chart):
        assert latest is not None
        await_nodes(run)
        run.ui.done(f"Release '{RELEASE}' unchanged (revision {latest.revision}, {latest.chart})")
        with b.naming.step(run.ui, "Waiting for the registry rollout"):
            run.kubectl.rollout_status(
                NAMESPACE,
                RELEASE_SELECTOR,
                timeout=deadline.cap(run.options.timeout, "waiting for rollout"),
            )
        return
    assert run.helm_version is not None
    kind_cluster.write_private(b.values_path, json.dumps(chart.values, indent=2, sort_keys=True))
    verb = "Installing" if latest is None else "Upgrading"
    name = f"{verb} chart {CHART_NAME} as release '{RELEASE}' (Helm {run.helm_version.major})"
    deployed = threading.Event()
    nudge = threading.Thread(target=nudge_binding, args=(run, deployed), daemon=True)
    with run.ui.step(name):
        nudge.start()
        try:
            run.helm.upgrade_install(
                RELEASE,
                str(chart.chart_dir),
                NAMESPACE,
                values_files=[str(b.values_path)],
                timeout=deadline.cap(CAP_CREATE, "deploying the chart"),
                description=chart.description,
            )
        except PalletError:
            await_nodes(run, helm_failed=True)  # nodes never Ready: that is the error
            raise
        except BaseException:  # interrupted: stop polling the nodes too
            if run.node_waiter is not None:
                run.node_waiter.stop()
            raise
        finally:
            deployed.set()
            nudge.join(timeout=CAP_QUICK)
        await_nodes(run)  # its ✓ line just before the chart's (the two waits overlap)
    run.actions.append("deployed-release")


def clear_pending(run: KindUp, latest: HelmRevision) -> None:
    """A release left ``pending-*`` by an interrupted `up` (Helm stopped mid-way) refuses
    every upgrade. This run holds the environment's lock, so no other pallet-dev run is
    changing it: roll it back (a first install is uninstalled; the registry's data lives
    on the host and its volume is kept, reclaim policy Retain), then deploy as usual."""
    what = "Removing" if latest.status == "pending-install" else "Rolling back"
    name = f"{what} release '{RELEASE}', left {latest.status} by an interrupted run"
    timeout = run.deadline.cap(CAP_QUICK, "unlocking the release")
    with run.backend.naming.step(run.ui, name):
        run.helm.clear_pending(latest, RELEASE, NAMESPACE, timeout=timeout)
        run.latest = run.helm.latest_revision(RELEASE, NAMESPACE, timeout=timeout)
    run.actions.append("cleared-pending-release")


# kube-controller-manager binds the chart's claim to its pre-bound hostPath volume when it
# has seen both; when the claim reaches it first, it waits for its next full resync (15 s),
# and the registry pod waits unscheduled with it ("unbound immediate PersistentVolumeClaims").
# Touching the claim makes it look again at once.
# Helm takes about a second to create the objects; a quicker Helm leaves no time to look
BIND_NUDGE_FIRST = 1.0
BIND_NUDGE_EVERY = 0.5
BIND_NUDGE_ANNOTATION = "dev.pallet/bind-requested"


def nudge_binding(run: KindUp, deployed: threading.Event) -> None:
    """While Helm waits: touch the registry's claim while it waits for its volume."""
    wait = BIND_NUDGE_FIRST
    while not deployed.wait(wait):
        wait = BIND_NUDGE_EVERY
        try:
            for claim in run.kubectl.get_pvcs(NAMESPACE, RELEASE_SELECTOR, timeout=CAP_QUICK):
                if claim.phase == "Pending" and claim.volume:
                    run.kubectl.annotate(
                        NAMESPACE,
                        f"pvc/{claim.name}",
                        BIND_NUDGE_ANNOTATION,
                        f"{time.time():.0f}",
                        timeout=CAP_QUICK,
                    )
                elif claim.phase == "Bound":
                    return
        except Exception:  # noqa: BLE001 - best effort in a thread: never a traceback
            return  # Helm's own wait still reports a claim that stays unbound


def plan_wait_registry(run: KindUp) -> list[PlanStep]:
    b = run.backend
    detail = (
        f"GET {b.endpoint}/v2/ until 200 with Docker-Distribution-Api-Version: "
        f"registry/2.0, within the {run.options.timeout:g} s deadline"
    )
    return [PlanStep("Wait for the registry", [], detail=detail)]


def wait_registry(run: KindUp) -> None:
    b = run.backend
    context, port = b.context, b.config.registry.port
    b.await_registry(
        run.ui,
        run.deadline.at,
        run.options.timeout,
        hint=f"See `kubectl --context {context} -n {NAMESPACE} get pods,svc` and "
        f"`kubectl --context {context} -n {NAMESPACE} logs -l {RELEASE_SELECTOR}`; check "
        f"nothing else holds port {port}.",
    )
