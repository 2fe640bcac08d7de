"""`pallet-dev dev` on the Docker backend, for real: edit -> the new version serves, only
that agent restarts; a broken build keeps the old version serving; a fix recovers;
SIGTERM exits 130 with everything still healthy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pallet_dev.probe import http_get
from tests.support.agents_env import container_ids, pallet_dev
from tests.support.dev_process import DevProcess
from tests.support.real_docker import DockerEnv

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def version(url: str) -> str:
    code, _, body = http_get(url.replace("/healthz", "/cgi-bin/version"), 5)
    assert code == 200
    return body.decode()


def test_dev_loop_edit_break_fix_stop(docker_env: DockerEnv, project: Path) -> None:
    dev = DevProcess({**os.environ, **docker_env.environ()}, project)
    try:
        watching = dev.next("watching", timeout=300)
        assert watching["agents"] == ["packer", "planner", "tracker"]
        health = pallet_dev(docker_env, project, "health", "--json")
        url = {a["name"]: a["url"] for a in health["agents"]}["packer"]
        before = container_ids(docker_env.name)

        (project / "agents" / "packer" / "VERSION").write_text("packer-2\n")
        cycle = dev.next("cycle")
        assert cycle["agent"] == "packer" and cycle["ok"], cycle
        assert {"detect", "build", "push", "rollout", "seconds", "digest"} <= set(cycle)
        assert "packer-2" in version(url)
        after = container_ids(docker_env.name)
        name = docker_env.name
        assert after[f"{name}-agent-planner"] == before[f"{name}-agent-planner"]
        assert after[f"{name}-agent-tracker"] == before[f"{name}-agent-tracker"]

        dockerfile = project / "agents" / "packer" / "Dockerfile"
        good = dockerfile.read_text()
        dockerfile.write_text(good + "RUN exit 5\n")
        broken = dev.next("cycle")
        assert not broken["ok"] and broken["phase"] == "build"
        assert "Building agent 'packer' failed" in broken["error"]
        assert "packer-2" in version(url), "the old version stopped serving"

        dockerfile.write_text(good)
        (project / "agents" / "packer" / "VERSION").write_text("packer-3\n")
        fixed = dev.next("cycle")
        assert fixed["ok"], fixed
        assert "packer-3" in version(url)
    finally:
        code = dev.stop()
    assert code == 130, "".join(dev.stderr)
    assert "Traceback" not in "".join(dev.stderr)
    assert pallet_dev(docker_env, project, "health", "--json")["status"] == "healthy"
