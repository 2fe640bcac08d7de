"""Real OCI round trips with oras (the Python OCI client): push and pull artifact bytes."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def push_artifact(host: str, reference: str, payload: bytes, workdir: Path) -> str:
    """Push ``payload`` as a one-layer OCI artifact; return the manifest digest."""
    import oras.client

    workdir.mkdir(parents=True, exist_ok=True)
    blob = workdir / "payload.bin"
    blob.write_bytes(payload)
    client = oras.client.OrasClient(hostname=host, insecure=True)
    response = client.push(
        files=[str(blob)], target=f"{host}/{reference}", disable_path_validation=True
    )
    assert response.status_code == 201, response.text
    return manifest_digest(host, reference)


def pull_artifact(host: str, reference: str, workdir: Path) -> bytes:
    import oras.client

    outdir = workdir / "pulled"
    outdir.mkdir(parents=True, exist_ok=True)
    client = oras.client.OrasClient(hostname=host, insecure=True)
    files = client.pull(target=f"{host}/{reference}", outdir=str(outdir))
    assert len(files) == 1, files
    return Path(files[0]).read_bytes()


def manifest_digest(host: str, reference: str) -> str:
    repository, _, tag = reference.rpartition(":")
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 200, f"manifest {reference}: HTTP {response.status}"
        return str(response.getheader("Docker-Content-Digest"))
    finally:
        conn.close()


def manifest_exists(host: str, reference: str) -> bool:
    try:
        manifest_digest(host, reference)
    except (AssertionError, OSError):
        return False
    return True


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def catalog(host: str) -> list[str]:
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("GET", "/v2/_catalog")
        return list(json.loads(conn.getresponse().read()).get("repositories") or [])
    finally:
        conn.close()
