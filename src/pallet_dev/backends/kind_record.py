"""What a kind `up` verified, so that an `up` with nothing changed need not ask again.

A full `up` asks about a dozen questions (kind, kubectl, helm, docker exec: about 1.7 s).
When it succeeds, :func:`make_record` writes down what it verified, and what that depends
on, into the environment's state file (``up_record``, next to what `health` reads):

* ``inputs``: a digest of everything the cluster, the chart's values and the release derive
  from: the settings (but not which file they came from), the chart's files, the Helm values
  files' contents, the ``--set`` overrides, the uid/gid the pod runs as, and pallet-dev's
  own code;
* ``node``: the node container's id and start time, and ``verified_at``, when `up` finished;
* ``image``: the registry image's id in the host's Docker (what `kind load` copied);
* ``kubeconfig``: pallet-dev's private kubeconfig and the user's kubeconfig files (the
  ``KUBECONFIG`` list, else ``~/.kube/config``), each as path, size, mtime and inode.

The next `up` recomputes the local facts (:func:`holds_here`, no subprocess) and asks two
questions at once (:func:`verify`): one ``docker inspect`` of the node and the image, and
``GET /v2/``. When everything agrees, the cluster, its containerd ``hosts.toml``, the
kubeconfig entries, the KEP-1755 ConfigMap and the release are as the last `up` left them,
and nothing else runs.
Anything else (a changed config, values file or chart, another kubeconfig, the node
restarted or recreated, the image rebuilt, the registry not answering) takes the full
`up`, which first drops the record (context.UP_RECORD) and writes a new one at its end.
A change made by hand inside the cluster (a `helm rollback`, a deleted ConfigMap) is not
seen by this check: `up --recreate`, or any changed input, converges again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev import __version__
from pallet_dev.runner import Runner

if TYPE_CHECKING:
    from pallet_dev.settings import Settings

RECORD_VERSION = 1
# the no-op's two questions: a registry that answers at all answers within this
PROBE_SECONDS = 1.0
INSPECT_SECONDS = 20.0


def code_stamp() -> list[int]:
    """pallet-dev's own modules (count, newest mtime): a changed checkout is a changed input."""
    newest, count = 0, 0
    folders = [Path(__file__).resolve().parents[1]]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    folders.append(Path(entry.path))
                elif entry.name.endswith(".py"):
                    count += 1
                    newest = max(newest, entry.stat().st_mtime_ns)
    return [count, newest]


def inputs_digest(
    settings: Mapping[str, Any],
    chart_dir: Path,
    values_files: Sequence[str],
    set_overrides: Sequence[str],
    *,
    extra: str = "",
) -> str:
    """Everything a full kind `up` derives the cluster and the release from.

    ``settings`` is Settings.to_dict(); which file they came from and the backend name
    (auto or kind: either way the kind backend runs) do not change the result.
    """
    from pallet_dev.chart.release import chart_fingerprint

    used = {key: value for key, value in settings.items() if key not in ("config_file", "backend")}
    values: list[list[str | None]] = []
    for name in values_files:
        try:
            values.append([name, hashlib.sha256(Path(name).read_bytes()).hexdigest()])
        except OSError:
            values.append([name, None])
    ids = [os.getuid(), os.getgid()] if hasattr(os, "getuid") else []
    inputs = {
        "version": __version__,
        "code": code_stamp(),
        "settings": used,
        "chart_dir": str(chart_dir),
        "values_files": values,
        "set": list(set_overrides),
        "ids": ids,
    }
    if extra:  # the caches' CA files and credentials (kind_mirrors.inputs_digest)
        inputs["mirrors"] = extra
    return chart_fingerprint(chart_dir, inputs)


def user_kubeconfig_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The files kubectl reads as the user's kubeconfig: the ``KUBECONFIG`` list, or
    ``~/.kube/config``."""
    environ = os.environ if environ is None else environ
    listed = [part for part in environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    if listed:
        return [os.path.abspath(os.path.expanduser(part)) for part in listed]
    return [os.path.join(os.path.expanduser("~"), ".kube", "config")]


def file_stamps(files: Sequence[str | Path]) -> list[list[Any]]:
    """Path, size, mtime and inode of each file (None when it is missing)."""
    stamps: list[list[Any]] = []
    for name in files:
        try:
            info = os.stat(name)
        except OSError:
            stamps.append([str(name), None])
            continue
        stamps.append([str(name), [info.st_size, info.st_mtime_ns, info.st_ino]])
    return stamps


def kubeconfig_stamps(private: Path, environ: Mapping[str, str] | None = None) -> list[list[Any]]:
    return file_stamps([private, *user_kubeconfig_files(environ)])


def make_record(
    inputs: str,
    image: str,
    node: Mapping[str, str] | None,
    image_id: str | None,
    private_kubeconfig: Path,
    service_host: str | None = None,
) -> dict[str, Any]:
    """What a full `up` verified: the registry ``image`` the chart runs, with ``image_id``
    in the host's Docker; ``node``: id and StartedAt when `up` inspected it;
    ``service_host``: the registry Service's address for agents (the same inputs give
    the same one, so an `up` that only changes agents needs no chart values)."""
    return {
        "version": RECORD_VERSION,
        "inputs": inputs,
        "node": dict(node) if node else None,
        "verified_at": time.time(),
        "image_ref": image,
        "image": image_id,
        "kubeconfig": kubeconfig_stamps(private_kubeconfig),
        "service_host": service_host,
    }


def docker_time(text: str) -> float | None:
    """Docker's RFC 3339 time ("2026-12-06T01:50:00.123456789Z") in seconds, or None."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def node_agrees(record: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    """Whether it is the running node `up` verified, not restarted since.

    With its id and StartedAt recorded, both must be equal. Without them (`up` created the
    node and never inspected it), it must have been running since before `up` finished.
    """
    state = container.get("State") or {}
    if not isinstance(state, dict) or state.get("Status") != "running":
        return False
    identity = {"id": str(container.get("Id", "")), "started_at": str(state.get("StartedAt", ""))}
    recorded = record.get("node")
    if recorded:
        return bool(dict(recorded) == identity)
    started = docker_time(identity["started_at"])
    verified = record.get("verified_at")
    return started is not None and isinstance(verified, (int, float)) and started <= verified


def holds_here(record: Mapping[str, Any], inputs: str, private_kubeconfig: Path) -> bool:
    """The local half of the check (no subprocess): same inputs, same kubeconfig files."""
    return (
        record.get("version") == RECORD_VERSION
        and record.get("inputs") == inputs
        and record.get("kubeconfig") == kubeconfig_stamps(private_kubeconfig)
    )


def docker_agrees(
    record: Mapping[str, Any], objects: Sequence[Mapping[str, Any]], node: str
) -> bool:
    """The node is the one `up` verified, and the host's image the one it copied.

    ``objects`` is what `docker inspect <node> <image>` found (missing ones are absent).
    """
    containers = [o for o in objects if "State" in o and o.get("Name") == f"/{node}"]
    images = [o for o in objects if "State" not in o and "RepoTags" in o]
    if len(containers) != 1 or len(images) != 1 or images[0].get("Id") != record.get("image"):
        return False
    return node_agrees(record, containers[0])


def verify(runner: Runner, settings: Settings, record: Mapping[str, Any]) -> bool:
    """The remote half: `docker inspect` of the node and the image, and GET /v2/, at once.

    Any error is a False (the full `up` then reports it).
    """
    from concurrent.futures import ThreadPoolExecutor

    from pallet_dev.errors import PalletError
    from pallet_dev.probe import probe, registry_target
    from pallet_dev.tools.docker import Docker
    from pallet_dev.tools.kind import control_plane_node

    node, image = control_plane_node(settings.name), record.get("image_ref")
    if not isinstance(image, str):
        return False
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pallet-dev") as pool:
        answer = pool.submit(probe, registry_target(settings.registry_url), PROBE_SECONDS)
        try:
            objects = Docker(runner, timeout=INSPECT_SECONDS).inspect_objects([node, image])
        except PalletError:
            return False
        if not answer.result().healthy:
            return False
    return docker_agrees(record, objects, node)
