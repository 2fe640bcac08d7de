"""The kind end-to-end tests' shared fixtures: the node image and the real CLIs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import require_tool, skip_or_fail
from tests.support.http_servers import free_port
from tests.support.real_docker import TEST_IMAGE

IMAGE_VAR = "PALLET_DEV_KIND_NODE_IMAGE"


def _run(argv: list[str], *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def node_image() -> str:
    image = os.environ.get(IMAGE_VAR, "")
    docker = shutil.which("docker")
    if not image:
        pytest.skip(
            f"no kind node image: set {IMAGE_VAR} to a local node image (CI builds one with "
            "tests/e2e/kind-node/build-node-image.sh)"
        )
    if docker is None or _run([docker, "image", "inspect", image], timeout=60).returncode != 0:
        pytest.skip(f"{IMAGE_VAR}={image} is not present in the local Docker image store")
    return image


@pytest.fixture(scope="module")
def tools(node_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The real CLIs on PATH for pallet-dev (Helm from PALLET_DEV_HELM4 when set)."""
    found = {
        "docker": require_tool("docker"),
        "kind": require_tool("kind", env_var="KIND"),
        "kubectl": require_tool("kubectl"),
        "helm": require_tool("helm", env_var="PALLET_DEV_HELM4"),
    }
    if _run([found["docker"], "info"], timeout=60).returncode != 0:
        skip_or_fail("the Docker daemon does not answer")
    probe = _run(
        [found["docker"], "run", "--rm", "--privileged", "--entrypoint", "/bin/true", node_image]
    )
    if probe.returncode != 0:
        skip_or_fail(
            f"privileged containers do not start here ({probe.stderr.strip()[-200:]}); "
            "see tests/e2e/kind-node/install-runtime-wrapper.sh"
        )
    bin_dir = tmp_path_factory.mktemp("tools-bin")
    for name, path in found.items():
        (bin_dir / name).symlink_to(path)
    found["bin_dir"] = str(bin_dir)
    return found


def kind_environ(
    tools: dict[str, str], node_image: str, name: str, home: str, kubeconfig: str
) -> dict[str, str]:
    """The environment pallet-dev runs in for one kind test environment ``name``."""
    environ = {
        **os.environ,
        "PATH": tools["bin_dir"] + os.pathsep + os.environ.get("PATH", ""),
        "PALLET_DEV_HOME": home,
        "PALLET_DEV_NAME": name,
        "PALLET_DEV_BACKEND": "kind",
        "PALLET_DEV_REGISTRY_PORT": str(free_port()),
        # the pinned release built here (nothing can be pulled): scripts/build-registry-image.sh
        "PALLET_DEV_REGISTRY_IMAGE": TEST_IMAGE,
        IMAGE_VAR: node_image,
        "KUBECONFIG": kubeconfig,
        "NO_COLOR": "1",
    }
    environ.pop("PALLET_DEV_CHART_DIR", None)
    return environ
