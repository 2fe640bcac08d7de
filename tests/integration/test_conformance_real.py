"""The OCI distribution-spec conformance suite against the registry as `pallet-dev up`
deploys it on the Docker backend: the pinned release, pallet-dev's container settings.
(The kind backend's in-cluster registry runs the same suite in tests/e2e/test_kind_e2e.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.conformance import KNOWN_UNSUPPORTED, conformance_binary, run_conformance
from tests.support.real_docker import DockerEnv, docker

pytestmark = [pytest.mark.docker]


def test_conformance_on_the_docker_backend(
    docker_env: DockerEnv, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    conformance_binary()  # skips (fails in CI) before anything is created
    up = subprocess.run(
        [sys.executable, "-m", "pallet_dev", "up", "--prefer-docker", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stderr
    version = docker("run", "--rm", "--entrypoint", "registry", _image(docker_env), "--version")
    assert "v3" in version.stdout or "3." in version.stdout, version.stdout

    result = run_conformance(docker_env.host, tmp_path / "results")
    record_property("conformance", result.summary(f"docker backend, {version.stdout.strip()}"))
    assert result.unexpected == [], f"{result.unexpected}\n{result.output_tail}"
    assert set(result.by_group) <= set(KNOWN_UNSUPPORTED)
    # the pull, push, discovery and management cases ran and passed: not an empty run
    assert result.passed >= 500, result.summary("docker backend")


def _image(env: DockerEnv) -> str:
    info = env.inspect()
    assert info is not None, "up created no registry container"
    config = info["Config"]
    assert isinstance(config, dict)
    return str(config["Image"])
