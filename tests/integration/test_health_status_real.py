"""`health --json` and `status --json` from the real CLI against a real registry container.

Each test brings up its own environment (unique name, free port, own PALLET_DEV_HOME,
the local stand-in registry image) with `pallet-dev up --prefer-docker`, validates
the real output against the committed schemas in docs/, and removes everything with
`pallet-dev down --clean`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.oci import push_artifact
from tests.support.real_docker import DockerEnv, docker

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
PALLET_DEV = Path(sys.executable).parent / "pallet-dev"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [str(PALLET_DEV)] if PALLET_DEV.exists() else [sys.executable, "-m", "pallet_dev"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ},
        stdin=subprocess.DEVNULL,
    )


def validated(kind: str, stdout: str) -> dict[str, Any]:
    import jsonschema

    schema = json.loads((REPO_ROOT / "docs" / f"{kind}.schema.json").read_text())
    document: dict[str, Any] = json.loads(stdout)
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)
    return document


@pytest.fixture
def registry_up(docker_env: DockerEnv) -> Iterator[DockerEnv]:
    result = cli("up", "--prefer-docker", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    try:
        yield docker_env
    finally:
        down = cli("down", "--clean")
        assert down.returncode == 0, down.stderr
        assert docker_env.inspect() is None and not docker_env.volume_exists()


def test_healthy_registry_health_and_status_match_the_schemas(registry_up: DockerEnv) -> None:
    env = registry_up
    result = cli("health", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    health = validated("health", result.stdout)
    assert health["status"] == "healthy" and health["backend"] == "docker"
    [registry] = health["services"]
    assert registry["url"] == f"http://{env.host}/v2/" and registry["status_code"] == 200

    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = validated("status", result.stdout)
    assert status["up"] is True and status["backend"] == "docker"
    assert status["environment"] == env.name
    assert status["endpoint"] == f"http://{env.host}"
    assert status["registry"]["healthy"] is True
    container = status["backends"]["docker"]["container"]
    assert container["name"] == env.container and container["state"] == "running"
    assert container["managed"] is True
    assert container["ports"] == [f"{env.host}->5000/tcp"]
    assert status["backends"]["docker"]["volume"] == {
        "name": env.volume,
        "exists": True,
        "size_bytes": status["backends"]["docker"]["volume"]["size_bytes"],
    }


def test_status_counts_the_pushed_repositories(registry_up: DockerEnv, tmp_path: Path) -> None:
    push_artifact(registry_up.host, "pallet/one:v1", b"one", tmp_path / "one")
    push_artifact(registry_up.host, "pallet/two:v1", b"two", tmp_path / "two")
    status = validated("status", cli("status", "--json").stdout)
    assert status["registry"]["repository_count"] == 2
    assert status["registry"]["repositories"] == ["pallet/one", "pallet/two"]


def test_health_reports_the_outage_while_the_container_is_stopped(
    registry_up: DockerEnv,
) -> None:
    env = registry_up
    docker("container", "stop", "--time", "1", env.container)

    started = time.monotonic()
    result = cli("health", "--json", "--timeout", "1")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    health = validated("health", result.stdout)
    assert health["status"] == "unhealthy"
    assert health["services"][0]["healthy"] is False
    assert health["services"][0]["status_code"] is None
    assert elapsed < 1 + 10  # bounded by the probe timeout (and interpreter start-up)

    result = cli("health")
    assert result.returncode == 1 and "DOWN" in result.stdout

    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = validated("status", result.stdout)
    assert status["up"] is True  # the container exists, stopped
    assert status["registry"]["healthy"] is False and status["registry"]["error"]
    assert status["backends"]["docker"]["container"]["state"] == "exited"

    docker("container", "start", env.container)
    deadline = time.monotonic() + 30
    while (result := cli("health", "--json")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert result.returncode == 0, result.stdout
    assert validated("health", result.stdout)["status"] == "healthy"


def test_nothing_up_is_said_plainly(docker_env: DockerEnv) -> None:
    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = validated("status", result.stdout)
    assert status["up"] is False and status["backend"] is None
    assert status["registry"]["healthy"] is False
    assert status["backends"]["docker"]["exists"] is False

    result = cli("status")
    assert result.returncode == 0 and "Nothing is up" in result.stdout

    result = cli("health", "--json")
    assert result.returncode == 1
    assert validated("health", result.stdout)["services"][0]["error"] == "connection refused"
