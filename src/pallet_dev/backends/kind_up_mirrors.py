"""The kind `up` steps of the pull-through caches (backends/kind_mirrors.py says what
they are): each node's hosts.toml per upstream, and the caches' folders, Secret and CA
ConfigMap before the chart deploys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pallet_dev.backends import kind_mirrors
from pallet_dev.backends.base import PlanStep
from pallet_dev.backends.kind_cluster import CAP_QUICK
from pallet_dev.backends.registry_wiring import mirror_hosts_toml, mirror_hosts_toml_path
from pallet_dev.chart.inputs import NAMESPACE
from pallet_dev.tools.kind import NodeFiles, control_plane_node

if TYPE_CHECKING:
    from pallet_dev.backends.kind_up import KindUp


def mirror_files(run: KindUp, node: str) -> dict[str, str]:
    """Each cache's hosts.toml on ``node``: path: content."""
    return {
        mirror_hosts_toml_path(mirror.upstream): mirror_hosts_toml(
            mirror.upstream, mirror.remote_url, node, kind_mirrors.node_port(index)
        )
        for index, mirror in enumerate(run.backend.config.mirrors)
    }


def await_early_files(run: KindUp) -> None:
    """Wait until the hosts.toml files written while kind created the cluster are written
    (or that write gave up): `kind_up.load_early`."""
    if run.early_load is not None:
        run.early_files.wait(timeout=max(0.0, run.deadline.remaining()))


def plan_mirror_hosts_toml(run: KindUp) -> list[PlanStep]:
    b = run.backend
    node = control_plane_node(b.cluster)
    return [
        PlanStep(
            f"Point containerd on each node at the pull-through cache for {path.split('/')[-2]}",
            NodeFiles(b.runner).write_argv(node, path),
            detail=content,
        )
        for path, content in mirror_files(run, node).items()
    ]


def write_mirror_hosts_toml(run: KindUp) -> None:
    """Like :func:`write_hosts_toml`, per upstream: only files that differ are written,
    each file on its own thread (one `docker exec` to read, one to write)."""
    from concurrent.futures import ThreadPoolExecutor

    files = NodeFiles(run.backend.runner)

    def converge(item: tuple[str, str, str]) -> bool:
        node, path, content = item
        reading = run.deadline.cap(CAP_QUICK, "reading hosts.toml")
        if files.read(node, path, timeout=reading) == content:
            return False
        files.write(node, path, content, timeout=run.deadline.cap(CAP_QUICK, "writing hosts.toml"))
        return True

    await_early_files(run)
    wanted = [
        (node, path, content)
        for node in run.nodes
        for path, content in mirror_files(run, node).items()
    ]
    # the cluster created just now has the files written early
    todo = [item for item in wanted if (item[0], item[1]) not in run.early_written]
    early = len(todo) < len(wanted)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pallet-dev-hosts") as pool:
        changed = list(pool.map(converge, todo))
    if early or any(changed):
        run.actions.append("wrote-mirror-hosts-toml")


def _mirror_objects(run: KindUp) -> dict[str, object] | None:
    """The namespace, credentials Secret and CA ConfigMap the caches read (None: none)."""
    config = run.backend.config
    items = [
        item
        for item in (kind_mirrors.credentials_manifest(config), kind_mirrors.ca_manifest(config))
        if item is not None
    ]
    if not items:
        return None
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return {"apiVersion": "v1", "kind": "List", "items": [namespace, *items]}


def plan_prepare_mirrors(run: KindUp) -> list[PlanStep]:
    b = run.backend
    folder = b.data_dir / kind_mirrors.MIRRORS_FOLDER
    steps = [
        PlanStep(
            "Create each cache's folder in the host data folder (kept by `down` and"
            " --recreate, removed by `down --clean`)",
            [],
            detail=str(folder),
        )
    ]
    if any(m.username_env or m.ca_file for m in b.config.mirrors):
        steps.append(
            PlanStep(
                f"Apply Secret {kind_mirrors.CREDENTIALS_SECRET} (credentials from the "
                f"variables the config names) and ConfigMap {kind_mirrors.CA_CONFIG_MAP} "
                "(CA files), JSON on stdin",
                run.kubectl.apply_argv(),
            )
        )
    return steps


def prepare_mirrors(run: KindUp) -> None:
    b = run.backend
    kind_mirrors.prepare_folders(b.data_dir, b.config)
    objects = _mirror_objects(run)
    if objects is not None:
        run.kubectl.apply(
            objects, timeout=run.deadline.cap(CAP_QUICK, "applying the caches' Secret")
        )
        run.actions.append("applied-mirror-inputs")
