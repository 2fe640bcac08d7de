"""The kind cluster's own life: preflight, create, reuse, wait for nodes, private files.

Functions of :class:`~pallet_dev.backends.kind.KindBackend`'s steps that concern the
cluster itself (not what runs in it). Each draws its timeouts from the run's
:class:`~pallet_dev.backends.steps.Deadline`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pallet_dev.backends.steps import Deadline
from pallet_dev.errors import CommandFailed, CommandTimeout, OperationFailed, PalletError
from pallet_dev.errors import Interrupted, ReadinessTimeout
from pallet_dev.interrupts import Held
from pallet_dev.output import Steps
from pallet_dev.ports import ensure_port_free, port_conflict_hint
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.kind import (
    CONTROL_PLANE_STARTING,
    Kind,
    KindClusterConfig,
    control_plane_node,
    on_line,
)
from pallet_dev.tools.kubectl import Kubectl

if TYPE_CHECKING:
    from pallet_dev.backends.kind import KindBackend

# caps on single subprocesses (each also bounded by the time left)
CAP_QUICK = 30.0
CAP_CREATE = 600.0
CAP_DELETE = 180.0
CAP_LOAD = 300.0


def check_existing_node(
    backend: KindBackend,
    kind_config: KindClusterConfig,
    ui: Steps,
    deadline: Deadline,
    actions: list[str],
) -> dict[str, str] | None:
    """An existing cluster must publish the same port and mount the same data folder.

    Returns the node's id and start time when it was running already (for the record of
    what `up` verified, backends/kind_record.py); None when it had to be started.
    """
    docker = Docker(backend.runner, timeout=deadline.cap(CAP_QUICK, "inspecting the node"))
    node = control_plane_node(backend.cluster)
    info = docker.inspect_container(node)
    if info is None:
        raise OperationFailed(
            f"kind lists cluster '{backend.cluster}' but its node container {node} is missing.",
            hint="Rebuild it: `pallet-dev up --recreate` (registry data is kept).",
        )
    problems = []
    wanted_port = f"{kind_config.node_port}/tcp"
    if not any(
        binding.container_port == wanted_port
        and binding.host_port == kind_config.host_port
        and (binding.host_ip or "0.0.0.0") == kind_config.listen_address
        for binding in info.ports
    ):
        problems.append(
            f"it does not publish {kind_config.listen_address}:{kind_config.host_port} -> "
            f"{kind_config.node_port}"
        )
    if not any(
        mount.get("Source") == kind_config.host_data_dir
        and mount.get("Destination") == kind_config.node_data_dir
        for mount in info.mounts
    ):
        problems.append(f"it does not mount {kind_config.host_data_dir}")
    if problems:
        raise OperationFailed(
            f"The existing kind cluster '{backend.cluster}' was created with other settings: "
            + "; ".join(problems)
            + ".",
            hint="Rebuild it with `pallet-dev up --recreate` (registry data is kept), or "
            "go back to the settings it was created with.",
        )
    if not info.running:
        with backend.naming.step(ui, f"Starting the stopped node {node}"):
            docker.start(node)
        actions.append("started-node")
        return None
    return {"id": info.id, "started_at": info.started_at}


def preflight(
    backend: KindBackend, kind_config: KindClusterConfig, ui: Steps, deadline: Deadline
) -> None:
    """Before a cluster is made: what would make it fail on this host (exit 3), or warn."""
    from pallet_dev import preflight as checks

    try:
        host = Docker(
            backend.runner, timeout=deadline.cap(CAP_QUICK, "reading docker info")
        ).host_info()
    except (CommandFailed, CommandTimeout, OperationFailed) as exc:
        # unknown facts never block: kind itself reports what really fails
        ui.warn(f"Could not read `docker info` for the preflight checks ({exc.message}).")
        from pallet_dev.tools.docker_types import HostInfo

        host = HostInfo()
    registry = backend.config.registry
    checks.enforce(
        [
            *checks.node_image_findings(host, kind_config.node_image),
            *checks.kind_daemon_findings(host),
            *checks.localhost_findings(registry.bind_address, registry.port),
        ],
        ui.warn,
    )


def create_cluster(
    backend: KindBackend,
    kind: Kind,
    kind_config: KindClusterConfig,
    ui: Steps,
    deadline: Deadline,
    *,
    containerd_ready: Callable[[], None] | None = None,
) -> None:
    """``containerd_ready`` runs (on kind's output thread: it must return at once) when the
    node's containerd is configured for good, while kind goes on starting Kubernetes."""
    preflight(backend, kind_config, ui, deadline)
    registry = backend.config.registry
    ensure_port_free(registry.bind_address, registry.port, backend.runner)
    prepare_data_dir(backend)
    backend.kind_config_path.parent.mkdir(parents=True, exist_ok=True)
    backend.kind_config_path.write_text(kind_config.to_yaml(), encoding="utf-8")
    backend.kubeconfig_path.unlink(missing_ok=True)
    name = f"Creating kind cluster '{backend.cluster}' ({_short_image(kind_config.node_image)})"
    with ui.step(name):
        try:
            kind.create_cluster(
                backend.cluster,
                str(backend.kind_config_path),
                str(backend.kubeconfig_path),
                timeout=deadline.cap(CAP_CREATE, "creating the cluster"),
                on_output=(
                    on_line(CONTROL_PLANE_STARTING, containerd_ready) if containerd_ready else None
                ),
            )
        except CommandTimeout as exc:
            # killed mid-way, kind could not clean up: remove the half-made nodes
            delete_quietly(backend, kind)
            raise ReadinessTimeout(
                f"Creating the kind cluster did not finish within {exc.timeout:g} s; "
                "the half-made cluster was deleted.",
                hint="Retry with a larger --timeout; the first run may pull the node image.",
            ) from exc
        except (KeyboardInterrupt, Interrupted):
            # Ctrl-C or SIGTERM stopped kind mid-way: a half-made cluster would be taken
            # for a whole one by the next `up`; a second signal waits for the deletion
            with Held():
                delete_quietly(backend, kind)
            raise
        except CommandFailed as exc:
            delete_quietly(backend, kind)
            raise OperationFailed(
                f"Creating the kind cluster failed: {exc.message}",
                hint=create_hint(exc.stderr or exc.stdout, kind_config),
            ) from exc
    os.chmod(backend.kubeconfig_path, 0o600)


def delete_quietly(backend: KindBackend, kind: Kind) -> None:
    try:
        kind.delete_cluster(backend.cluster, timeout=CAP_DELETE)
    except PalletError:
        pass


def prepare_data_dir(backend: KindBackend) -> None:
    """The host folder the node mounts, writable by the registry pod whatever its uid.

    hostPath volumes ignore fsGroup, and with rootless Docker or a remapped uid
    the pod's uid is not the host user's, so the folder itself is mode 0777; its
    parent (pallet-dev's folder for this environment) is 0700, so no other local
    user can reach it. Docker's bind mount does not depend on the parent's mode.
    """
    env_dir = backend.paths.env_data_dir(backend.cluster)
    backend.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(env_dir, 0o700)
    os.chmod(backend.data_dir, 0o777)


def ensure_kubeconfig(backend: KindBackend, kind: Kind, deadline: Deadline) -> None:
    """Our private kubeconfig for a cluster that exists (fetched again when missing)."""
    if backend.kubeconfig_path.is_file():
        return
    text = kind.get_kubeconfig(
        backend.cluster, timeout=deadline.cap(CAP_QUICK, "reading kubeconfig")
    )
    write_private(backend.kubeconfig_path, text)


def write_private(path: Path, text: str) -> None:
    """A file only its owner reads (kubeconfigs and values may hold credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def wait_nodes_ready(
    backend: KindBackend,
    kubectl: Kubectl,
    deadline: Deadline,
    *,
    until_ready: bool = True,
    stop: threading.Event | None = None,
) -> bool:
    """Poll the nodes until every one is Ready (or, without ``until_ready``, until the API
    server lists them, Ready or not); whether they were all Ready at the last answer.

    A timeout says what the last answer was; ``stop`` ends the polling early (False).
    """
    last = "no answer yet"
    while True:
        remaining = deadline.remaining()
        if remaining > 0:
            try:
                nodes = kubectl.get_nodes(timeout=min(remaining, CAP_QUICK))
            except CommandFailed as exc:
                nodes, last = [], exc.stderr_tail or exc.message
            else:
                waiting = [node.name for node in nodes if not node.ready]
                if nodes and (not waiting or not until_ready):
                    return not waiting
                last = f"not Ready: {', '.join(waiting)}" if waiting else "no nodes registered"
        if deadline.remaining() <= backend.poll_interval:
            raise ReadinessTimeout(
                f"The cluster's nodes were not Ready within {deadline.total:g} s ({last}).",
                hint=f"See `kubectl --context {backend.context} describe nodes`; retry with a "
                "larger --timeout.",
            )
        if stop is None:
            time.sleep(backend.poll_interval)
        elif stop.wait(backend.poll_interval):
            return False


class NodeWaiter:
    """The wait for Ready nodes, in the background while `up` goes on to the chart.

    The chart's deploy needs Ready nodes and Helm waits for its pods anyway, so on a new
    cluster Helm starts while the node turns Ready (3-5 s on a 2-core machine) instead
    of after it. Only `kubectl get nodes` calls run in the thread; every tool that changes
    something stays on the main thread.
    """

    def __init__(self, backend: KindBackend, kubectl: Kubectl, deadline: Deadline) -> None:
        self.error: PalletError | None = None
        self.ready = False
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._args = (backend, kubectl, deadline)
        self._thread = threading.Thread(target=self._poll, name="pallet-dev-nodes", daemon=True)

    def start(self) -> NodeWaiter:
        self._thread.start()
        return self

    def _poll(self) -> None:
        started = time.monotonic()
        try:
            self.ready = wait_nodes_ready(*self._args, stop=self._stop)
        except PalletError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - reported on the main thread, never here
            self.error = OperationFailed(f"Polling the nodes failed: {exc}")
        self.elapsed = time.monotonic() - started

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` s for the polling to end (Ready, failed or stopped)."""
        self._thread.join(max(0.0, timeout))

    def stop(self) -> None:
        self._stop.set()


def _short_image(image: str) -> str:
    return image.split("@", 1)[0]


def create_hint(stderr: str, kind_config: KindClusterConfig) -> str:
    text = stderr.lower()
    if "address already in use" in text or "port is already allocated" in text:
        return port_conflict_hint(kind_config.host_port, None)
    if "failed to pull image" in text or "pull access denied" in text:
        return (
            f"The node image {kind_config.node_image} cannot be pulled: check the network, or "
            "set kind.node_image (PALLET_DEV_KIND_NODE_IMAGE) to an image you have."
        )
    if "already exist" in text:
        return f"Delete it (`kind delete cluster --name {kind_config.name}`) or use another name."
    return "See kind's output above; `pallet-dev doctor` checks the prerequisites."
