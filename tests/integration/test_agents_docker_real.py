"""The example agents on the Docker backend, for real: build, push, run by digest, health,
the agent -> registry -> agent path, a one-agent change, down/up without rebuilding.

Runs `python -m pallet_dev` as a user would, in a copy of examples/pallet, against the real
dockerd and registry image; removes only what its own environment name made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agents_env import container_ids, get, pallet_dev
from tests.support.fast_path import heavy_modules_probe
from tests.support.real_docker import DockerEnv, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_example_agents_up_health_change_one_down_up_clean(
    docker_env: DockerEnv, project: Path
) -> None:
    name = docker_env.name
    plan = pallet_dev(docker_env, project, "up", "--dry-run", "--json")
    argvs = [step["argv"][:2] for step in plan["steps"]]
    assert ["docker", "build"] in argvs and ["docker", "push"] in argvs
    assert any(step["argv"][:2] == ["docker", "run"] and "--network" in step["argv"]
               for step in plan["steps"])  # fmt: skip

    first = pallet_dev(docker_env, project, "up", "--json")
    digests = {a["name"]: a["digest"] for a in first["agents"]}
    assert sorted(digests) == ["packer", "planner", "tracker"]
    assert all(a["built"] for a in first["agents"])

    health = pallet_dev(docker_env, project, "health", "--json")
    assert health["status"] == "healthy"
    assert [(a["name"], a["healthy"], a["ready_replicas"]) for a in health["agents"]] == [
        ("planner", True, 1), ("tracker", True, 1), ("packer", True, 1),
    ]  # fmt: skip
    urls = {a["name"]: a["url"].removesuffix("/healthz") for a in health["agents"]}

    # planner wrote its plan through PALLET_REGISTRY; tracker reads it back the same way
    assert "plan from planner (planner-1)" in get(urls["tracker"] + "/cgi-bin/artifact")
    env = get(urls["packer"] + "/cgi-bin/env")
    assert f"PALLET_REGISTRY={name}-registry:5000" in env and "GREETING=hello" in env

    status = pallet_dev(docker_env, project, "status", "--json")
    assert {a["name"]: a["digest"] for a in status["agents"]} == digests

    again = pallet_dev(docker_env, project, "up", "--json")
    assert again["changed"] is False and not any(a["built"] for a in again["agents"])
    # `up` with agents runs without Typer, pydantic or yaml once the config has a snapshot
    quick = subprocess.run(
        [sys.executable, "-c", heavy_modules_probe(), "up", "--json"],
        capture_output=True, text=True, timeout=600, cwd=project,
        env={**os.environ, **docker_env.environ(), "NO_COLOR": "1"},
    )  # fmt: skip
    assert quick.returncode == 0 and quick.stderr.splitlines()[-1] == "[]", quick.stderr
    assert json.loads(quick.stdout)["agents"] == again["agents"]

    before = container_ids(name)
    (project / "agents" / "packer" / "VERSION").write_text("packer-2\n")
    changed = pallet_dev(docker_env, project, "up", "--json")
    assert [a["name"] for a in changed["agents"] if a["built"]] == ["packer"]
    after = container_ids(name)
    assert after[f"{name}-agent-planner"] == before[f"{name}-agent-planner"]
    assert after[f"{name}-agent-tracker"] == before[f"{name}-agent-tracker"]
    assert after[f"{name}-agent-packer"] != before[f"{name}-agent-packer"]
    new_digests = {a["name"]: a["digest"] for a in changed["agents"]}
    assert new_digests["packer"] != digests["packer"]
    assert "packer-2" in get(urls["packer"] + "/cgi-bin/version"), "the host port moved"

    logs = pallet_dev(docker_env, project, "logs", "planner", "--tail", "5")
    assert "published sha256:" in logs.stdout

    down = pallet_dev(docker_env, project, "down", "--json")
    assert f"network {name}" in down["removed"] and not container_ids(name)
    gone = pallet_dev(docker_env, project, "logs", "planner", check=False)
    assert gone.returncode == 1 and gone.stdout == "", gone.stderr
    assert gone.stderr.startswith(
        f"pallet-dev: error: Agent 'planner' is not running in environment '{name}': there "
        f"is no container {name}-agent-planner.\n  fix: Start it with `pallet-dev up`"
    ), gone.stderr
    back = pallet_dev(docker_env, project, "up", "--json")
    assert {a["name"]: a["digest"] for a in back["agents"]} == new_digests
    assert not any(a["built"] for a in back["agents"]), "down lost the agents' images"

    pallet_dev(docker_env, project, "down", "--clean", "--json")
    assert not container_ids(name)
    assert docker("network", "inspect", name, check=False).returncode != 0


def test_a_broken_build_deploys_nothing_and_the_old_version_serves(
    docker_env: DockerEnv, project: Path
) -> None:
    pallet_dev(docker_env, project, "up", "--json")
    before = container_ids(docker_env.name)
    dockerfile = project / "agents" / "tracker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN exit 7\n")
    exited = docker("container", "ls", "--all", "--quiet", "--filter", "status=exited").stdout
    result = pallet_dev(docker_env, project, "up", check=False)
    left = docker("container", "ls", "--all", "--quiet", "--filter", "status=exited").stdout
    assert sorted(left.split()) == sorted(exited.split()), "the failed build left a container"
    assert result.returncode == 1
    assert "Building agent 'tracker' failed" in result.stderr
    assert "docker build output of agent 'tracker'" in result.stderr
    assert "Traceback" not in result.stderr
    assert container_ids(docker_env.name) == before
    health = pallet_dev(docker_env, project, "health", "--json")
    assert health["status"] == "healthy"


def test_an_agent_that_never_turns_healthy_is_named_with_its_logs(
    docker_env: DockerEnv, project: Path
) -> None:
    config = project / "pallet-dev.yaml"
    config.write_text(config.read_text().replace("health: /healthz", "health: /missing", 1))
    result = pallet_dev(docker_env, project, "up", "--timeout", "25", check=False)
    assert result.returncode == 1, result.stderr
    assert "Agent 'planner' did not answer" in result.stderr
    assert "expected 2xx, got 404" in result.stderr
    assert "planner: published" in result.stderr, "its last log lines are missing"
    assert "Traceback" not in result.stderr
