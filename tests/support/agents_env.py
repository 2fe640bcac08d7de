"""The example agents in a scratch copy of examples/pallet, for real-Docker tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.probe import http_get
from tests.conftest import skip_or_fail
from tests.support.real_docker import DockerEnv, docker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "pallet"
BASE_IMAGE = "pallet-dev-examples/busybox:local"


@pytest.fixture(scope="module")
def base_image() -> str:
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        if shutil.which("busybox") is None:
            skip_or_fail(
                "a static busybox (Debian: busybox-static) builds the examples' base image"
            )
        built = subprocess.run(
            ["bash", str(EXAMPLES / "base" / "build-base-image.sh"), BASE_IMAGE],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
    return BASE_IMAGE


def pallet_dev(env: DockerEnv, cwd: Path, *args: str, check: bool = True) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "pallet_dev", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, **env.environ(), "NO_COLOR": "1"},
    )  # fmt: skip
    if check:
        assert result.returncode == 0, f"pallet-dev {args}: {result.stderr}"
    if "--json" in args and result.stdout.strip():
        return json.loads(result.stdout)
    return result


def container_ids(name: str) -> dict[str, str]:
    out = docker(
        "container", "ls", "--all", "--filter", f"label=dev.pallet.environment={name}",
        "--filter", "label=dev.pallet.agent", "--format", "{{.Names}} {{.ID}}",
    ).stdout  # fmt: skip
    return dict(line.split() for line in out.splitlines() if line.strip())


def get(url: str) -> str:
    code, _, body = http_get(url, 5)
    assert code == 200, f"{url}: {code} {body[:200]!r}"
    return body.decode()


@pytest.fixture
def project(docker_env: DockerEnv, base_image: str, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "pallet"
    shutil.copytree(EXAMPLES, folder)
    yield folder
    for name in container_ids(docker_env.name):
        docker("container", "rm", "--force", "--volumes", name, check=False)
    # the registry is attached to the network: remove it first, or the network stays
    docker("container", "rm", "--force", "--volumes", docker_env.container, check=False)
    docker("network", "rm", docker_env.name, check=False)
    images = docker(
        "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
        f"localhost:{docker_env.port}/{docker_env.name}/*",
    ).stdout.split()  # fmt: skip
    if images:
        docker("image", "rm", "--force", *images, check=False)
