"""The kind backend's `up`, as one list of steps (see :mod:`pallet_dev.backends.steps`).

Each step is a pair of functions over the run's :class:`KindUp`: ``plan_*`` gives the
commands `--dry-run` prints, the other does it and stores what it found for the steps
after it. :func:`up_steps` is the order; a new step is one more entry there.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pallet_dev.backends import kind_cluster
from pallet_dev.backends.base import PlanStep, UpOptions
from pallet_dev.backends.kind_deploy import (
    deploy,
    nodes_step_name,
    plan_deploy,
    plan_wait_registry,
    wait_registry,
)
from pallet_dev.backends.kind_cluster import CAP_DELETE, CAP_LOAD, CAP_QUICK
from pallet_dev.backends.kind_up_mirrors import (
    await_early_files,
    mirror_files,
    plan_mirror_hosts_toml,
    plan_prepare_mirrors,
    prepare_mirrors,
    write_mirror_hosts_toml,
)
from pallet_dev.backends.registry_wiring import (
    LOCAL_REGISTRY_HOSTING_NAME,
    LOCAL_REGISTRY_HOSTING_NAMESPACE,
    hosts_toml,
    hosts_toml_path,
    local_registry_hosting,
)
from pallet_dev.backends.steps import Deadline, Step, StepWarning
from pallet_dev.chart.inputs import NAMESPACE, RELEASE, ChartInputs
from pallet_dev.errors import CommandFailed, CommandTimeout, OperationFailed, PalletError
from pallet_dev.output import Steps, plural
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.helm import Helm, HelmRevision, HelmVersion
from pallet_dev.tools.kind import Kind, KindClusterConfig, NodeFiles, NodeImages, control_plane_node
from pallet_dev.tools.kubeconfig import UserKubeconfig, entry_from_kubeconfig
from pallet_dev.tools.kubectl import Kubectl

if TYPE_CHECKING:
    from pallet_dev.backends.kind import KindBackend


@dataclass
class KindUp:
    """One run of `up` (or its plan): the inputs, and what each step found for the next."""

    backend: KindBackend
    options: UpOptions
    chart: ChartInputs
    kind_config: KindClusterConfig
    deadline: Deadline
    ui: Steps
    kind: Kind
    kubectl: Kubectl
    helm: Helm  # one per run: it remembers the Helm version it read
    actions: list[str] = field(default_factory=list)
    exists: bool = False
    nodes: list[str] = field(default_factory=list)
    helm_version: HelmVersion | None = None
    latest: HelmRevision | None = None
    node_identity: dict[str, str] | None = None  # id and StartedAt, when it was inspected
    host_image_id: str | None = None  # the registry image in the host's Docker
    early_load: threading.Thread | None = None  # the node wired while kind creates it
    early_files: threading.Event = field(default_factory=threading.Event)  # its files' write ended
    early_written: frozenset[tuple[str, str]] = frozenset()  # (node, path) it wrote
    early_loaded: bool = False
    node_waiter: kind_cluster.NodeWaiter | None = None  # nodes not Ready yet: the chart waits


def up_steps(run: KindUp) -> tuple[Step[KindUp], ...]:
    """`up`'s steps in order; neighbouring concurrent ones touch different things."""
    b = run.backend
    port = b.config.registry.port
    return (
        Step("Checking Docker", plan_docker, check_docker),
        Step("Looking for the cluster", plan_find, find_cluster),
        Step("Deleting the cluster (--recreate)", plan_recreate, recreate),
        Step("Creating or reusing the cluster", plan_cluster, ensure_cluster),
        # the steps up to the chart need the API server and the node containers, not Ready
        # nodes: on a new cluster they and Helm run while the node turns Ready (3-5 s)
        Step("Waiting for the nodes", plan_nodes, wait_nodes),
        Step(
            f"Pointing containerd at the registry for localhost:{port}",
            plan_hosts_toml,
            write_hosts_toml,
            concurrent=True,
        ),
        *(
            (
                Step(
                    f"Pointing containerd at the {plural(len(b.config.mirrors), 'cache')}",
                    plan_mirror_hosts_toml,
                    write_mirror_hosts_toml,
                    concurrent=True,
                ),
                Step(
                    "Preparing the pull-through caches (folders, credentials, CA files)",
                    plan_prepare_mirrors,
                    prepare_mirrors,
                    concurrent=True,
                ),
            )
            if b.config.mirrors
            else ()
        ),
        Step(
            f"Adding context {b.context} to your kubeconfig",
            plan_publish_context,
            publish_context,
            concurrent=True,
        ),
        Step(
            "Publishing kube-public/local-registry-hosting (KEP-1755)",
            plan_registry_hosting,
            apply_local_registry_hosting,
            concurrent=True,
        ),
        Step(
            f"Reading release '{RELEASE}' and the Helm version",
            plan_read_release,
            read_release,
            concurrent=True,
        ),
        Step(
            f"Registry image {run.chart.image} in the cluster (from the host's Docker)",
            plan_image,
            ensure_image,
            concurrent=True,
        ),
        Step("Deploying the chart", plan_deploy, deploy),
        Step("Waiting for the registry", plan_wait_registry, wait_registry),
    )


def plan_docker(run: KindUp) -> list[PlanStep]:
    argv = ["docker", "version", "--format", "{{json .Server.Version}}"]
    return [PlanStep("Check the Docker daemon", argv)]


def check_docker(run: KindUp) -> None:
    b = run.backend
    with run.ui.step("Checking Docker"):
        Docker(b.runner, timeout=run.deadline.cap(CAP_QUICK, "checking Docker")).ping()


def plan_find(run: KindUp) -> list[PlanStep]:
    argv = run.kind.get_clusters_argv()
    return [PlanStep("Look for the kind cluster (exact name match)", argv)]


def find_cluster(run: KindUp) -> None:
    b = run.backend
    run.exists = run.kind.cluster_exists(
        b.cluster, timeout=run.deadline.cap(CAP_QUICK, "listing clusters")
    )


def plan_recreate(run: KindUp) -> list[PlanStep]:
    b = run.backend
    name = "Delete the cluster (only with --recreate; registry data is kept)"
    return [PlanStep(name, run.kind.delete_cluster_argv(b.cluster))]


def recreate(run: KindUp) -> None:
    b = run.backend
    if not (run.exists and run.options.recreate):
        return
    with run.ui.step(f"Deleting cluster '{b.cluster}' (--recreate; registry data kept)"):
        run.kind.delete_cluster(
            b.cluster, timeout=run.deadline.cap(CAP_DELETE, "deleting the cluster")
        )
    run.actions.append("deleted-cluster")
    run.exists = False


def plan_cluster(run: KindUp) -> list[PlanStep]:
    b = run.backend
    create = run.kind.create_cluster_argv(
        b.cluster, str(b.kind_config_path), str(b.kubeconfig_path)
    )
    return [
        PlanStep(
            "Create the host data folder (bind-mounted into the node; kept by `down`)",
            [],
            detail=str(b.data_dir),
        ),
        PlanStep("Write the kind config (kind_config below)", [], detail=str(b.kind_config_path)),
        PlanStep("Create the cluster (only when missing)", create),
    ]


def ensure_cluster(run: KindUp) -> None:
    b = run.backend
    kind = run.kind
    if run.exists:
        run.node_identity = kind_cluster.check_existing_node(
            b, run.kind_config, run.ui, run.deadline, run.actions
        )
        run.ui.done(f"Cluster '{b.cluster}' exists (reused)")
        kind_cluster.ensure_kubeconfig(b, kind, run.deadline)
    else:
        kind_cluster.create_cluster(
            b, kind, run.kind_config, run.ui, run.deadline, containerd_ready=lambda: load_early(run)
        )
        run.actions.append("created-cluster")


def load_early(run: KindUp) -> None:
    """Wire the new node to the registry while kind starts Kubernetes on it.

    Its containerd's ``hosts.toml`` files (the registry's and each cache's, in one `docker
    exec`), then the registry image (`kind load`: `docker save`, then an import into the
    node's containerd): seconds that otherwise come after `kind create`. It runs in the
    background; :func:`write_hosts_toml` and the caches' step wait for the files (not the
    image), :func:`ensure_image` for all of it; then they check and write or copy as
    usual: a failure here only means those steps do the work.
    """

    def copy() -> None:
        b = run.backend
        try:
            node = control_plane_node(b.cluster)
            files = node_registry_files(run, node)
            timeout = run.deadline.cap(CAP_QUICK, "writing hosts.toml")
            NodeFiles(b.runner).write_many(node, files, timeout=timeout)
            run.early_written = frozenset((node, path) for path in files)
        except PalletError:
            pass
        finally:
            run.early_files.set()
        try:
            docker = Docker(b.runner, timeout=run.deadline.cap(CAP_QUICK, "inspecting the image"))
            if docker.image_id(run.chart.image) is None:
                return
            timeout = run.deadline.cap(CAP_LOAD, "loading the registry image")
            run.kind.load_docker_image(run.chart.image, b.cluster, timeout=timeout)
            run.early_loaded = True
        except PalletError:
            pass

    run.early_load = threading.Thread(target=copy, name="pallet-dev-image-load", daemon=True)
    run.early_load.start()


def node_registry_files(run: KindUp, node: str) -> dict[str, str]:
    """Every hosts.toml ``node`` needs: the registry's and each cache's (path: content)."""
    port = run.backend.config.registry.port
    files = {hosts_toml_path(port): hosts_toml(port, node, run.chart.node_port)}
    files.update(mirror_files(run, node))
    return files


def plan_nodes(run: KindUp) -> list[PlanStep]:
    b = run.backend
    return [
        PlanStep("List the nodes", run.kind.get_nodes_argv(b.cluster)),
        PlanStep(
            "Wait until every node is Ready (in the background from the API server's first "
            "answer on: the steps up to the chart's deploy go on meanwhile)",
            run.kubectl.get_nodes_argv(),
            detail=f"polled until all Ready, within the {run.options.timeout:g} s deadline",
        ),
    ]


def wait_nodes(run: KindUp) -> None:
    """List the nodes and wait until the API server answers (a new cluster's already does;
    a restarted node's takes seconds). Nodes not Ready yet are waited for in the
    background: the chart's deploy reports that wait (:func:`kind_deploy.await_nodes`)."""
    b = run.backend
    run.nodes = run.kind.get_nodes(b.cluster, timeout=run.deadline.cap(CAP_QUICK, "listing nodes"))
    if not run.nodes:
        raise OperationFailed(
            f"kind lists no nodes for cluster '{b.cluster}'.",
            hint="Recreate it: `pallet-dev up --recreate`.",
        )
    name = nodes_step_name(run)
    started = time.monotonic()
    try:
        ready = kind_cluster.wait_nodes_ready(b, run.kubectl, run.deadline, until_ready=False)
    except PalletError as exc:
        run.ui.failed(name)
        named = b.naming.named(name, exc)
        if named is exc:
            raise
        raise named from exc
    if ready:
        run.ui.done(name, time.monotonic() - started)
    else:
        run.node_waiter = kind_cluster.NodeWaiter(b, run.kubectl, run.deadline).start()


def plan_hosts_toml(run: KindUp) -> list[PlanStep]:
    b = run.backend
    port, node = b.config.registry.port, control_plane_node(b.cluster)
    return [
        PlanStep(
            f"Point containerd on each node at the registry for localhost:{port}",
            NodeFiles(b.runner).write_argv(node, hosts_toml_path(port)),
            detail=hosts_toml(port, node, run.chart.node_port),
        )
    ]


def write_hosts_toml(run: KindUp) -> None:
    b = run.backend
    files = NodeFiles(b.runner)
    port = b.config.registry.port
    path = hosts_toml_path(port)
    await_early_files(run)
    changed = False
    for node in run.nodes:
        if (node, path) in run.early_written:  # on the cluster created just now
            changed = True
            continue
        content = hosts_toml(port, node, run.chart.node_port)
        reading = run.deadline.cap(CAP_QUICK, "reading hosts.toml")
        if files.read(node, path, timeout=reading) == content:
            continue
        files.write(node, path, content, timeout=run.deadline.cap(CAP_QUICK, "writing hosts.toml"))
        changed = True
    if changed:
        run.actions.append("wrote-hosts-toml")


def plan_publish_context(run: KindUp) -> list[PlanStep]:
    b = run.backend
    user = UserKubeconfig(b.runner)
    ca, cert, key = (str(p) for p in user.cert_files(b.certs_dir))
    return [
        PlanStep(
            f"Add cluster {b.context} to your kubeconfig (only when it differs)",
            user.set_cluster_argv(b.context, "https://127.0.0.1:<api-port>", ca),
            detail="the API server address and certificates come from the kubeconfig kind "
            f"wrote to {b.kubeconfig_path}",
        ),
        PlanStep(
            f"Add credentials {b.context} to your kubeconfig",
            user.set_credentials_argv(b.context, cert, key),
        ),
        PlanStep(
            f"Add context {b.context} to your kubeconfig (current context unchanged)",
            user.set_context_argv(b.context),
        ),
    ]


def publish_context(run: KindUp) -> StepWarning | None:
    """Make ``kind-<name>`` usable from the user's kubeconfig; never switch to it.

    `kind create cluster` would make the new context current in the user's
    kubeconfig (kind merges and sets current-context). So kind writes to our private
    file instead, and the entries are copied with `kubectl config set-*`
    (:meth:`UserKubeconfig.publish`). Only a convenience: pallet-dev itself uses its
    private kubeconfig, so a failure is a warning.
    """
    b = run.backend
    try:
        text = b.kubeconfig_path.read_text(encoding="utf-8")
        ours = entry_from_kubeconfig(text, b.context)
        if ours is None:
            raise OperationFailed(
                f"The kubeconfig kind wrote ({b.kubeconfig_path}) has no context " f"{b.context}.",
                hint="Rebuild the cluster: `pallet-dev up --recreate`.",
            )
        timeout = run.deadline.cap(CAP_QUICK, "updating your kubeconfig")
        if UserKubeconfig(b.runner).publish(b.context, ours, b.certs_dir, timeout=timeout):
            run.actions.append("published-context")
    except (CommandFailed, CommandTimeout, OperationFailed) as exc:
        return StepWarning(
            f"Could not add context {b.context} to your kubeconfig: {exc.message} Use "
            f"`kubectl --kubeconfig {b.kubeconfig_path} --context {b.context}`."
        )
    return None


def plan_registry_hosting(run: KindUp) -> list[PlanStep]:
    b = run.backend
    return [
        PlanStep(
            "Publish the registry for Tilt/Skaffold (KEP-1755 ConfigMap, JSON on stdin)",
            run.kubectl.apply_argv(),
            detail=json.dumps(local_registry_hosting(b.config, run.chart.service_host)),
        )
    ]


def apply_local_registry_hosting(run: KindUp) -> None:
    b = run.backend
    kubectl = run.kubectl
    manifest = local_registry_hosting(b.config, run.chart.service_host)
    current = kubectl.get_configmap(
        LOCAL_REGISTRY_HOSTING_NAMESPACE,
        LOCAL_REGISTRY_HOSTING_NAME,
        timeout=run.deadline.cap(CAP_QUICK, "reading local-registry-hosting"),
    )
    if current is not None and current.get("data") == manifest["data"]:
        return
    timeout = run.deadline.cap(CAP_QUICK, "applying local-registry-hosting")
    kubectl.apply(manifest, timeout=timeout)
    run.actions.append("applied-local-registry-hosting")


def plan_read_release(run: KindUp) -> list[PlanStep]:
    helm = run.helm
    return [
        PlanStep("Detect the Helm major version", helm.version_argv()),
        PlanStep(
            "Read the release's latest revision (no upgrade when chart and values are "
            "unchanged: same fingerprint in its description)",
            helm.history_argv(RELEASE, NAMESPACE),
        ),
    ]


def read_release(run: KindUp) -> None:
    helm = run.helm
    run.helm_version = helm.version(
        timeout=run.deadline.cap(CAP_QUICK, "detecting the Helm version")
    )
    run.latest = helm.latest_revision(
        RELEASE, NAMESPACE, timeout=run.deadline.cap(CAP_QUICK, "reading the release")
    )


def plan_image(run: KindUp) -> list[PlanStep]:
    b = run.backend
    node, image = control_plane_node(b.cluster), run.chart.image
    return [
        PlanStep(
            "Compare the registry image on the host and on each node (by image ID)",
            NodeImages(b.runner).image_id_argv(node, image),
        ),
        PlanStep(
            "Copy it from the host's Docker into the nodes that lack it",
            run.kind.load_docker_image_argv(image, b.cluster),
        ),
    ]


def ensure_image(run: KindUp) -> StepWarning | None:
    """Copy the registry image from the host's Docker into nodes that lack it.

    The nodes then never pull it (the chart uses IfNotPresent), so `up` works
    offline. Presence is compared by image ID, as kind does, so nothing is copied
    when every node has the host's image already.
    """
    b = run.backend
    image, deadline = run.chart.image, run.deadline
    if run.early_load is not None:
        run.early_load.join(timeout=max(0.0, deadline.remaining()))
    docker = Docker(b.runner, timeout=deadline.cap(CAP_QUICK, "inspecting the image"))
    host_id = run.host_image_id = docker.image_id(image)
    if host_id is None:
        return StepWarning(
            f"{image} is not in the host's Docker: the node pulls it from its "
            "registry (this needs the network)."
        )
    images = NodeImages(b.runner)
    if all(
        images.image_id(node, image, timeout=deadline.cap(CAP_QUICK, "inspecting node images"))
        == host_id
        for node in run.nodes
    ):
        if run.early_loaded:
            run.actions.append("loaded-image")
        return None
    timeout = deadline.cap(CAP_LOAD, "loading the registry image")
    run.kind.load_docker_image(image, b.cluster, timeout=timeout)
    run.actions.append("loaded-image")
    return None
