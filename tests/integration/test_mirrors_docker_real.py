"""The Docker backend's pull-through caches against a TLS upstream of the tests' own.

A second distribution container serves https with a certificate from a test CA; the
environment's config mirrors it (``ca_file``). An artifact pushed to the upstream is
fetched through the cache container; with the upstream stopped, the cache still answers
from its own storage, and keeps doing so after `down` and `up`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agents_env import pallet_dev
from tests.support.real_docker import DockerEnv, docker
from tests.support.tls_upstream import TlsUpstream, digest, push_artifact, start_tls_upstream

pytestmark = pytest.mark.docker

MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def upstream(docker_env: DockerEnv, tmp_path: Path) -> Iterator[TlsUpstream]:
    name = f"{docker_env.name}-up{secrets.token_hex(2)}"
    server = start_tls_upstream(name, tmp_path / "certs")
    yield server
    server.remove()
    for volume in docker(
        "volume", "ls", "--quiet", "--filter", f"label=dev.pallet.environment={docker_env.name}"
    ).stdout.split():
        docker("volume", "rm", "--force", volume, check=False)


def write_config(folder: Path, upstream: TlsUpstream) -> str:
    """Only the test upstream is mirrored (the default four need the internet)."""
    host = f"{upstream.name}:5000"
    (folder / "pallet-dev.yaml").write_text(
        "mirrors:\n"
        f"  - upstream: {host}\n"
        f"    remote_url: https://{upstream.name}:5000\n"
        f"    ca_file: {upstream.ca_file.relative_to(folder)}\n",
        encoding="utf-8",
    )
    return host


def fetch(endpoint: str, repository: str, reference: str) -> tuple[int, bytes, str]:
    import httpx

    response = httpx.get(
        f"{endpoint}/v2/{repository}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=30,
    )
    return response.status_code, response.content, response.headers.get("docker-content-digest", "")


def blob(endpoint: str, repository: str, blob_digest: str) -> bytes:
    import httpx

    response = httpx.get(f"{endpoint}/v2/{repository}/blobs/{blob_digest}", timeout=30)
    assert response.status_code == 200, response.text[:200]
    return response.content


def cache_of(status: dict[str, Any], upstream: str) -> dict[str, Any]:
    [cache] = [row for row in status["mirrors"] if row["upstream"] == upstream]
    return cache


def test_cache_answers_for_the_upstream_and_keeps_answering_without_it(
    docker_env: DockerEnv, upstream: TlsUpstream, tmp_path: Path
) -> None:
    host = write_config(tmp_path, upstream)
    payload = secrets.token_bytes(4096)
    pushed = push_artifact(upstream.url, "team/tool", "1", payload, verify=str(upstream.ca_file))

    up = pallet_dev(docker_env, tmp_path, "up")
    assert "pull-through cache" in up.stderr
    # the cache reaches the upstream by name on the environment's network
    docker("network", "connect", docker_env.name, upstream.name)
    status = pallet_dev(docker_env, tmp_path, "status", "--json")
    cache = cache_of(status, host)
    assert cache["state"] == "running" and cache["entries"] == 0
    assert cache["hits"] is None and cache["misses"] is None
    endpoint = cache["endpoint"]
    assert endpoint.startswith("http://127.0.0.1:")

    code, body, served = fetch(endpoint, "team/tool", "1")
    assert code == 200 and served == pushed and digest(body) == pushed
    assert blob(endpoint, "team/tool", digest(payload)) == payload
    requests_before = upstream.logs().count('"GET /v2/team/tool/')
    assert requests_before > 0  # the first fetch went to the upstream

    upstream.stop()
    code, body, served = fetch(endpoint, "team/tool", "1")
    assert code == 200 and served == pushed
    assert blob(endpoint, "team/tool", digest(payload)) == payload

    status = pallet_dev(docker_env, tmp_path, "status", "--json")
    cache = cache_of(status, host)
    assert cache["entries"] == 1 and cache["size_bytes"] >= len(payload)
    human = pallet_dev(docker_env, tmp_path, "status").stdout
    assert f"Cache:       {host} {endpoint} running, 1 entries" in human
    assert "hits/misses not exposed" in human

    # the cache (and its port) outlive `down`; offline it starts and serves again
    pallet_dev(docker_env, tmp_path, "down")
    pallet_dev(docker_env, tmp_path, "up")
    status = pallet_dev(docker_env, tmp_path, "status", "--json")
    assert cache_of(status, host)["endpoint"] == endpoint
    code, _, served = fetch(endpoint, "team/tool", pushed)
    assert code == 200 and served == pushed
    assert upstream.logs().count('"GET /v2/team/tool/') == requests_before

    # `mirrors: []` removes the cache container; its volume stays until `down --clean`
    (tmp_path / "pallet-dev.yaml").write_text("mirrors: []\n", encoding="utf-8")
    pallet_dev(docker_env, tmp_path, "up")
    assert not pallet_dev(docker_env, tmp_path, "status", "--json").get("mirrors")
    names = docker(
        "container", "ls", "--all", "--format", "{{.Names}}",
        "--filter", f"label=dev.pallet.environment={docker_env.name}",
    ).stdout.split()  # fmt: skip
    assert not [name for name in names if "-mirror-" in name]
    volumes = docker(
        "volume", "ls", "--quiet", "--filter", f"label=dev.pallet.environment={docker_env.name}"
    ).stdout.split()
    assert any("-mirror-" in volume for volume in volumes)
    pallet_dev(docker_env, tmp_path, "down", "--clean")
    volumes = docker(
        "volume", "ls", "--quiet", "--filter", f"label=dev.pallet.environment={docker_env.name}"
    ).stdout.split()
    assert not volumes
