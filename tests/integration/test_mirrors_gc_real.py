"""`gc --mirrors` on the Docker backend against a TLS upstream of the tests' own.

Two repositories are pulled through the cache; `--dry-run` deletes nothing; `--older-than`
keeps everything fetched within a day without stopping the cache, and with a second
removes both, freeing their bytes (the upstream down: what went is gone, nothing half
served); with the upstream back a pull through the cache works again; plain
`gc --mirrors` empties the cache at the same endpoint, and it refills.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.integration.test_mirrors_docker_real import (  # noqa: F401 - the upstream fixture
    blob,
    cache_of,
    fetch,
    upstream,
    write_config,
)
from tests.support.agents_env import pallet_dev
from tests.support.real_docker import DockerEnv, docker
from tests.support.tls_upstream import TlsUpstream, digest, push_artifact

pytestmark = pytest.mark.docker


def fetch_when_answering(endpoint: str, repo: str, ref: str) -> tuple[int, bytes, str]:
    """Fetch through the cache until the restarted upstream answers it (30 s at most)."""
    until = time.monotonic() + 30
    while True:
        code, body, served = fetch(endpoint, repo, ref)
        if code == 200 or time.monotonic() > until:
            return code, body, served
        time.sleep(0.2)


def test_gc_mirrors_dry_run_then_prune_then_empty_and_pull_again(
    docker_env: DockerEnv, upstream: TlsUpstream, tmp_path: Path  # noqa: F811 - fixture
) -> None:
    host = write_config(tmp_path, upstream)
    payloads = {repo: secrets.token_bytes(200_000) for repo in ("team/old", "team/new")}
    pushed = {
        repo: push_artifact(upstream.url, repo, "1", data, verify=str(upstream.ca_file))
        for repo, data in payloads.items()
    }
    pallet_dev(docker_env, tmp_path, "up")
    # the registry's own collection needs a repository to walk
    registry = f"http://127.0.0.1:{docker_env.port}"
    push_artifact(registry, "app", "1", b"app", verify=str(upstream.ca_file))
    docker("network", "connect", docker_env.name, upstream.name)
    endpoint = cache_of(pallet_dev(docker_env, tmp_path, "status", "--json"), host)["endpoint"]
    for repo, data in payloads.items():
        code, _, served = fetch(endpoint, repo, "1")
        assert code == 200 and served == pushed[repo]
        assert blob(endpoint, repo, digest(data)) == data
    status = pallet_dev(docker_env, tmp_path, "status", "--json")
    before = cache_of(status, host)
    assert before["entries"] == 2 and before["size_bytes"] >= 400_000

    # without --mirrors the cache is never touched
    plain = pallet_dev(docker_env, tmp_path, "gc", "--json")
    assert "mirrors" not in plain

    dry = pallet_dev(docker_env, tmp_path, "gc", "--mirrors", "--dry-run", "--json")
    [report] = dry["mirrors"]
    assert report["upstream"] == host
    assert {r["name"]: r["action"] for r in report["repositories"]} == {
        "team/old": "delete",
        "team/new": "delete",
    }
    assert report["steps"] and "bytes_freed" not in report
    # nothing went
    assert cache_of(pallet_dev(docker_env, tmp_path, "status", "--json"), host)["entries"] == 2

    # nothing was fetched more than a day ago: --older-than 1d keeps all, does not stop it
    kept = pallet_dev(docker_env, tmp_path, "gc", "--mirrors", "--older-than", "1d", "--json")
    [report] = kept["mirrors"]
    assert all(r["action"] == "keep" for r in report["repositories"])
    assert report["method"] == "" and report["seconds_stopped"] == 0

    # --older-than 1s: both are older than a second now; pruned on a copy, copied back
    upstream.stop()
    pruned = pallet_dev(docker_env, tmp_path, "gc", "--mirrors", "--older-than", "1s", "--json")
    [report] = pruned["mirrors"]
    assert {r["action"] for r in report["repositories"]} == {"delete"}
    assert "stopped" in report["method"]
    assert report["bytes_freed"] >= 400_000, report
    status = pallet_dev(docker_env, tmp_path, "status", "--json")
    after = cache_of(status, host)
    assert after["entries"] == 0 and after["endpoint"] == endpoint
    # with the upstream down, what went is gone from the cache (it does not serve a stale half)
    code, _, _ = fetch(endpoint, "team/new", pushed["team/new"])
    assert code != 200

    # the upstream back: a pull through the cache works again and refills it
    docker("container", "start", upstream.name)
    code, _, served = fetch_when_answering(endpoint, "team/new", "1")
    assert code == 200 and served == pushed["team/new"]
    assert blob(endpoint, "team/new", digest(payloads["team/new"])) == payloads["team/new"]

    # plain --mirrors empties the cache; it answers at the same endpoint and refills
    emptied = pallet_dev(docker_env, tmp_path, "gc", "--mirrors", "--json")
    [report] = emptied["mirrors"]
    assert "fresh" in report["method"] and report["bytes_freed"] >= 200_000
    human_status = cache_of(pallet_dev(docker_env, tmp_path, "status", "--json"), host)
    assert human_status["entries"] == 0 and human_status["endpoint"] == endpoint
    code, _, served = fetch(endpoint, "team/old", "1")
    assert code == 200 and served == pushed["team/old"]
    assert blob(endpoint, "team/old", digest(payloads["team/old"])) == payloads["team/old"]
    docker("network", "disconnect", docker_env.name, upstream.name)
    pallet_dev(docker_env, tmp_path, "down", "--clean")
