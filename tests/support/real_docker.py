"""Fixtures for tests against the real Docker daemon and a real registry image."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool, skip_or_fail
from tests.support.http_servers import free_port
from tests.support.versions import pinned

# The pinned registry release, built here from its Go module (scripts/build-registry-image.sh).
TEST_IMAGE = os.environ.get("PALLET_DEV_TEST_REGISTRY_IMAGE") or pinned("LOCAL_REGISTRY_IMAGE")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    )


def require_docker() -> None:
    require_tool("docker")
    probe = docker("version", "--format", "{{json .Server.Version}}", check=False)
    if probe.returncode != 0:
        skip_or_fail(f"the Docker daemon does not answer: {probe.stderr.strip()[:200]}")
    if docker("image", "inspect", TEST_IMAGE, check=False).returncode != 0:
        skip_or_fail(
            f"registry image {TEST_IMAGE} is missing; build it with "
            f"`bash scripts/build-registry-image.sh {TEST_IMAGE}`"
        )


@dataclass
class DockerEnv:
    """One isolated pallet-dev environment: unique name, free port, own PALLET_DEV_HOME."""

    name: str
    port: int
    home: Path

    @property
    def container(self) -> str:
        return f"{self.name}-registry"

    @property
    def volume(self) -> str:
        return f"{self.name}-registry-data"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        return {
            "PALLET_DEV_NAME": self.name,
            "PALLET_DEV_BACKEND": "docker",
            "PALLET_DEV_REGISTRY_PORT": str(self.port),
            "PALLET_DEV_REGISTRY_IMAGE": TEST_IMAGE,
            "PALLET_DEV_HOME": str(self.home),
        }

    def inspect(self) -> dict[str, object] | None:
        result = docker("container", "inspect", self.container, check=False)
        if result.returncode != 0:
            return None
        data = json.loads(result.stdout)
        return data[0] if data else None

    def volume_exists(self) -> bool:
        return docker("volume", "inspect", self.volume, check=False).returncode == 0

    def labelled(self, kind: str) -> list[str]:
        """This environment's containers or volumes (its name is unique to the test)."""
        listing = "ls --all" if kind == "container" else "ls"
        out = docker(
            kind, *listing.split(), "--quiet",
            "--filter", f"label=dev.pallet.environment={self.name}", check=False,
        ).stdout  # fmt: skip
        return out.split()

    def cleanup(self) -> None:
        docker("container", "rm", "--force", "--volumes", self.container, check=False)
        # the pull-through caches (on by default) and their volumes
        for container in self.labelled("container"):
            docker("container", "rm", "--force", "--volumes", container, check=False)
        docker("volume", "rm", "--force", self.volume, check=False)
        for volume in self.labelled("volume"):
            docker("volume", "rm", "--force", volume, check=False)
        # the agents' network (docker networks are a small pool: a leak exhausts it)
        if docker("network", "inspect", self.name, check=False).returncode == 0:
            docker("network", "rm", self.name, check=False)


@pytest.fixture
def docker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerEnv]:
    require_docker()
    env = DockerEnv(f"pdt-{secrets.token_hex(4)}", free_port(), tmp_path / "home")
    monkeypatch.chdir(tmp_path)
    for key, value in env.environ().items():
        monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        env.cleanup()
