"""`pallet-dev gc` against the real dockerd and the registry of the Docker backend: on the
empty registry it has nothing to collect; then 20 changing tags pushed, `gc --keep 3` keeps
the newest three pullable by digest, the others answer 404, the disk frees at least their
layers, and an agent's digest stays."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_push_real import local_image, pallet_dev
from tests.support.gc_scenario import assert_collected, layers_of, push_changing_tags, status_of
from tests.support.real_docker import DockerEnv, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def record_agent(env: DockerEnv, digest: str) -> None:
    """As `up` records a deployed agent in the environment's state file."""
    state_file = env.home / "state" / f"{env.name}.json"
    state = json.loads(state_file.read_text())
    state["agents"] = {
        "agents": [{"name": "api", "backend": "docker", "desired": 1, "digest": digest}],
        "api": None,
    }
    state_file.write_text(json.dumps(state))


def push(tag: str) -> str:
    pushed = pallet_dev("push", tag, "--json")
    assert pushed.returncode == 0, pushed.stderr
    return str(json.loads(pushed.stdout)["digest"])


def test_gc_keeps_the_newest_and_the_agents_digest_and_frees_the_rest(
    docker_env: DockerEnv,
) -> None:
    repository = f"pdt-gc/{docker_env.name}"
    base = f"http://{docker_env.host}"
    registry = f"localhost:{docker_env.port}"
    names: list[str] = [f"{repository}:after"]
    pulled = f"{registry}/{repository}:none"
    try:
        assert pallet_dev("up", "--prefer-docker", "--json").returncode == 0
        # nothing pushed yet: the registry's collection has nothing to walk, which is no error
        empty = pallet_dev("gc", "--json")
        assert empty.returncode == 0, empty.stderr
        summary = json.loads(empty.stdout)["registries"][0]["collection"]["summary"]
        assert summary == "nothing to collect: the registry holds no image yet"
        tags, digests = push_changing_tags(repository, 20, local_image, push)
        names += tags
        agent = digests[5]  # would go with --keep 3, but an agent runs it
        record_agent(docker_env, agent)
        layers = {digest: layers_of(base, repository, digest) for digest in digests}

        plan = pallet_dev("gc", "--keep", "3", "--dry-run", "--json")
        assert plan.returncode == 0, plan.stderr
        planned = json.loads(plan.stdout)["registries"][0]
        assert sorted(d["digest"] for d in planned["delete"]) == sorted(
            d for d in digests[:17] if d != agent
        )
        assert all(status_of(f"{base}/v2/{repository}/manifests/{d}") == 200 for d in digests)

        result = pallet_dev("gc", "--keep", "3", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)["registries"][0]
        assert "stopped" in report["collection"]["method"] and report["delete_untagged"]
        assert "blobs marked" in report["collection"]["summary"]
        assert_collected(base, repository, layers, set(digests[17:]) | {agent}, report)

        # the newest pulls by digest from the registry (its local copy removed first)
        pulled = f"{registry}/{repository}@{digests[-1]}"
        docker("rmi", "-f", tags[-1], f"{registry}/{tags[-1]}", check=False)
        run = docker("run", "--rm", pulled, check=False)
        assert run.returncode == 0 and run.stdout.startswith("payload 19"), run.stderr

        # and the registry takes pushes again
        local_image(f"{repository}:after", "after")
        push(f"{repository}:after")
    finally:
        docker("rmi", "-f", *names, *(f"{registry}/{n}" for n in names), pulled, check=False)
