"""The pull-through caches on the kind backend: the chart runs them, pallet-dev wires them.

The chart (templates/mirrors.yaml) runs one distribution container per upstream in one
Pod, each published on the node at its fixed nodePort (:func:`node_port`). pallet-dev
gives it the caches (:func:`chart_layer`), creates each cache's folder under the kept host
data folder (writable by the pod's user), applies the credentials Secret and the CA
ConfigMap (JSON on kubectl's stdin: never argv, never Helm values), and writes one
containerd ``hosts.toml`` per upstream on every node (backends/registry_wiring.py) that
tries the cache first and falls back to the upstream itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev import mirrors
from pallet_dev.chart.constants import DEFAULT_NODE_PORT
from pallet_dev.chart.inputs import NAMESPACE, RELEASE

if TYPE_CHECKING:
    from pallet_dev.settings import MirrorSettings, Settings

CREDENTIALS_SECRET = f"{RELEASE}-mirror-credentials"
CA_CONFIG_MAP = f"{RELEASE}-mirror-cas"
# the caches' folders inside the registry's host data folder (the kind node mounts it)
MIRRORS_FOLDER = "_mirrors"


def node_port(index: int) -> int:
    """The cache's fixed nodePort: after the registry's, in the static band 30000-30085."""
    return DEFAULT_NODE_PORT + 1 + index


def chart_layer(config: Settings, digest: str) -> dict[str, Any]:
    """The chart's ``mirrors`` values for the configured caches (no credential in them)."""
    caches = []
    for index, mirror in enumerate(config.mirrors):
        slug = mirrors.mirror_slug(mirror.upstream)
        caches.append(
            {
                "name": slug,
                "upstream": mirror.upstream,
                "remoteUrl": mirror.remote_url,
                "nodePort": node_port(index),
                "credentialsSecret": CREDENTIALS_SECRET if mirror.username_env else "",
                "caConfigMap": CA_CONFIG_MAP if mirror.ca_file else "",
            }
        )
    return {"caches": caches, "inputsDigest": digest}


def _salt(state_dir: Path, env_name: str) -> bytes:
    """A random key of this environment's, so the digest of a credential cannot be guessed
    back from the Helm values it lands in."""
    path = state_dir / f"{env_name}.mirror-key"
    try:
        return path.read_bytes()
    except OSError:
        key = secrets.token_bytes(32)
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key


def inputs_digest(config: Settings, state_dir: Path) -> str:
    """What the caches read besides the settings: CA files' contents and the credentials
    (keyed), so a changed one rolls the caches' Pod and takes a full `up`. Reads the
    credentials' variables: a missing one is a ConfigError before anything changes."""
    if not any(mirror.ca_file or mirror.username_env for mirror in config.mirrors):
        return ""
    parts: list[str] = []
    key: bytes | None = None
    for mirror in config.mirrors:
        parts.append(mirror.upstream)
        if mirror.ca_file:
            parts.append(_file_digest(mirror.ca_file))
        found = mirrors.credentials(mirror)
        if found is not None:
            key = key or _salt(state_dir, config.name)
            secret = f"{found.username}\0{found.password}".encode()
            parts.append(hmac.new(key, secret, hashlib.sha256).hexdigest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def credentials_manifest(config: Settings) -> dict[str, Any] | None:
    """The Secret the caches with credentials read (None: none has credentials)."""
    data: dict[str, str] = {}
    for mirror in config.mirrors:
        found = mirrors.credentials(mirror)
        if found is not None:
            slug = mirrors.mirror_slug(mirror.upstream)
            data[f"{slug}-username"] = found.username
            data[f"{slug}-password"] = found.password
    if not data:
        return None
    return _object("Secret", CREDENTIALS_SECRET, {"stringData": data, "type": "Opaque"})


def ca_manifest(config: Settings) -> dict[str, Any] | None:
    """The ConfigMap of the upstreams' CA certificates (None: no cache has one)."""
    data = {
        f"{mirrors.mirror_slug(mirror.upstream)}.crt": Path(mirror.ca_file).read_text(
            encoding="utf-8"
        )
        for mirror in config.mirrors
        if mirror.ca_file
    }
    return _object("ConfigMap", CA_CONFIG_MAP, {"data": data}) if data else None


def _object(kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "pallet-dev"},
        },
        **body,
    }


def prepare_folders(data_dir: Path, config: Settings) -> None:
    """Each cache's folder in the host data folder, writable by the pod whatever its uid
    (hostPath ignores fsGroup; the environment's folder above it is 0700)."""
    base = data_dir / MIRRORS_FOLDER
    for folder in [base, *(base / mirrors.mirror_slug(m.upstream) for m in config.mirrors)]:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o777)


def cache_folder(data_dir: Path, mirror: MirrorSettings) -> Path:
    return data_dir / MIRRORS_FOLDER / mirrors.mirror_slug(mirror.upstream)


def count_repositories(folder: Path) -> int | None:
    """Repositories a cache holds: folders with a ``_manifests`` under its storage root."""
    root = folder / "docker" / "registry" / "v2" / "repositories"
    if not root.is_dir():
        return 0 if folder.is_dir() else None
    return sum(1 for _, dirs, _ in os.walk(root) if "_manifests" in dirs)


def status_rows(config: Settings, data_dir: Path, cluster_exists: bool) -> list[dict[str, Any]]:
    """Each cache as `status` shows it: read from its folder on this host (the kind node
    mounts it), so no cluster call is needed."""
    from pallet_dev.backends.kind_status import folder_size
    from pallet_dev.tools.kind import control_plane_node

    node = control_plane_node(config.name)
    rows = []
    for index, mirror in enumerate(config.mirrors):
        folder = cache_folder(data_dir, mirror)
        rows.append(
            {
                "upstream": mirror.upstream,
                "remote_url": mirror.remote_url,
                # where the node's containerd reaches it (not published on this host)
                "endpoint": f"http://{node}:{node_port(index)}" if cluster_exists else None,
                "state": "deployed" if cluster_exists else "not running",
                "entries": count_repositories(folder),
                "size_bytes": folder_size(folder) if folder.is_dir() else None,
                "hits": None,
                "misses": None,
            }
        )
    return rows
