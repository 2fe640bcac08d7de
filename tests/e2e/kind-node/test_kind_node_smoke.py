"""Smoke test of the offline-built kind node image (tests/e2e/kind-node).

Creates a real kind cluster from the image that build-node-image.sh made, waits
for the node to be Ready and CoreDNS to run, runs a pod from an image loaded
with ``kind load docker-image`` (it also resolves a Service name through
CoreDNS), then deletes the cluster. The user's kubeconfig is never touched: kind
writes to a temporary file and kubectl reads only that file.

Needs: docker whose default runtime starts privileged containers (on the test
VMs: install-runtime-wrapper.sh), kind, and the node image. Skips without them,
fails instead when PALLET_DEV_REQUIRE_REAL=1.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]


def _load_shared_helpers() -> ModuleType:
    """tests/conftest.py's helpers (this folder's name is no importable package)."""
    spec = importlib.util.spec_from_file_location(
        "pallet_tests_conftest_helpers", REPO_ROOT / "tests" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _load_shared_helpers()
require_tool = _helpers.require_tool
skip_or_fail = _helpers.skip_or_fail
CLUSTER = "pallet-node-smoke"
CONTEXT = f"kind-{CLUSTER}"
NODE = f"{CLUSTER}-control-plane"
POD_IMAGE = "pallet-dev/kind-node-smoke-pod:1"

SMOKE_MANIFEST = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: smoke-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 10Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: smoke
spec:
  restartPolicy: Never
  containers:
    - name: smoke
      image: @IMAGE@
      imagePullPolicy: Never
      command: ["/bin/sh", "-c", "@SCRIPT@"]
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: smoke-data
"""

pytestmark = [pytest.mark.kind_e2e, pytest.mark.slow, pytest.mark.timeout(900)]


def _versions() -> dict[str, str]:
    values: dict[str, str] = {}
    path = REPO_ROOT / ".ci" / "versions.env"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"')
    return values


def node_image() -> str:
    image = os.environ.get("PALLET_DEV_KIND_NODE_IMAGE") or _versions().get("KIND_NODE_IMAGE")
    if not image:
        skip_or_fail("no kind node image configured (KIND_NODE_IMAGE in .ci/versions.env)")
    assert image is not None
    return image


def run(
    *args: str, timeout: float = 300, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=check, **kwargs
    )


def _say(message: str) -> None:
    print(f"[kind-node-smoke] {message}", flush=True)


@pytest.fixture(scope="module")
def prerequisites() -> dict[str, str]:
    docker = require_tool("docker")
    kind = require_tool("kind", env_var="KIND")
    if run(docker, "info", check=False, timeout=30).returncode != 0:
        skip_or_fail("docker daemon is not reachable")
    image = node_image()
    if run(docker, "image", "inspect", image, check=False).returncode != 0:
        skip_or_fail(
            f"kind node image {image} is not built; run "
            "tests/e2e/kind-node/build-node-image.sh (about 22 minutes cold)"
        )
    probe = run(
        docker,
        "run",
        "--rm",
        "--privileged",
        "--entrypoint",
        "/bin/true",
        image,
        check=False,
        timeout=120,
    )
    if probe.returncode != 0:
        skip_or_fail(
            "privileged containers do not start here "
            f"({probe.stderr.strip()[-200:]}); run tests/e2e/kind-node/install-runtime-wrapper.sh"
        )
    return {"docker": docker, "kind": kind, "image": image}


def _cluster_exists(kind: str) -> bool:
    out = run(kind, "get", "clusters", check=False).stdout
    return CLUSTER in out.split()


def _wait(kubectl: list[str], *args: str, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        res = run(*kubectl, "wait", *args, "--timeout=20s", check=False, timeout=60)
        if res.returncode == 0:
            return
        last = (res.stderr or res.stdout).strip()
        time.sleep(2)
    raise AssertionError(f"kubectl wait {' '.join(args)} timed out: {last}")


def _make_pod_image(docker: str, workdir: Path) -> None:
    """A busybox image made from the node's own static busybox (nothing pulled)."""
    root = workdir / "pod-rootfs"
    (root / "bin").mkdir(parents=True)
    run(docker, "cp", f"{NODE}:/bin/busybox", str(root / "bin" / "busybox"))
    for applet in ("sh", "echo", "nslookup", "cat", "sleep", "wget", "mkdir", "rm"):
        (root / "bin" / applet).symlink_to("busybox")
    archive = workdir / "pod-rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    with archive.open("rb") as fh:
        subprocess.run(
            [docker, "import", "--change", 'CMD ["/bin/sh"]', "-", POD_IMAGE],
            stdin=fh,
            capture_output=True,
            check=True,
            timeout=120,
        )


def test_kind_cluster_from_offline_node_image(
    prerequisites: dict[str, str], tmp_path: Path
) -> None:
    docker, kind, image = prerequisites["docker"], prerequisites["kind"], prerequisites["image"]
    kubeconfig = tmp_path / "kubeconfig"
    if _cluster_exists(kind):
        run(kind, "delete", "cluster", "--name", CLUSTER, "--kubeconfig", str(kubeconfig))
    timings: dict[str, float] = {}
    try:
        start = time.monotonic()
        create = run(
            kind,
            "create",
            "cluster",
            "--name",
            CLUSTER,
            "--image",
            image,
            "--kubeconfig",
            str(kubeconfig),
            "--wait",
            "0",
            check=False,
            timeout=600,
        )
        timings["kind create cluster"] = time.monotonic() - start
        assert create.returncode == 0, f"kind create cluster failed:\n{create.stderr}"

        kubectl_bin = tmp_path / "kubectl"
        run(docker, "cp", f"{NODE}:/usr/bin/kubectl", str(kubectl_bin))
        kubectl = [str(kubectl_bin), "--kubeconfig", str(kubeconfig), "--context", CONTEXT]

        _wait(kubectl, "--for=condition=Ready", "node", "--all", timeout=300)
        timings["node Ready (from create)"] = time.monotonic() - start
        _wait(
            kubectl,
            "-n",
            "kube-system",
            "--for=condition=Ready",
            "pod",
            "-l",
            "k8s-app=kube-dns",
            timeout=300,
        )
        timings["CoreDNS Ready (from create)"] = time.monotonic() - start
        phases = run(
            *kubectl,
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "k8s-app=kube-dns",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ).stdout.split()
        assert phases and all(p == "Running" for p in phases), phases

        _make_pod_image(docker, tmp_path)
        load = run(kind, "load", "docker-image", POD_IMAGE, "--name", CLUSTER, check=False)
        assert load.returncode == 0, f"kind load docker-image failed:\n{load.stderr}"

        # The pod writes to a volume of the default StorageClass (local-path,
        # whose helper pod runs from an image inside the node) and resolves a
        # Service name through CoreDNS and kube-proxy.
        script = (
            "echo hello-from-pod > /data/hello && cat /data/hello"
            " && nslookup kubernetes.default.svc.cluster.local"
        )
        manifest = SMOKE_MANIFEST.replace("@IMAGE@", POD_IMAGE).replace("@SCRIPT@", script)
        run(*kubectl, "apply", "-f", "-", input=manifest)
        deadline = time.monotonic() + 180
        phase = ""
        while time.monotonic() < deadline:
            phase = run(*kubectl, "get", "pod", "smoke", "-o", "jsonpath={.status.phase}").stdout
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(2)
        logs = run(*kubectl, "logs", "smoke", check=False).stdout
        timings["pod done (from create)"] = time.monotonic() - start
        if phase != "Succeeded":
            describe = run(*kubectl, "describe", "pod", "smoke", check=False).stdout
            raise AssertionError(f"smoke pod ended {phase!r}\nlogs:\n{logs}\n{describe[-3000:]}")
        assert "hello-from-pod" in logs
        assert "10.96.0.1" in logs, f"Service name did not resolve through CoreDNS:\n{logs}"
    finally:
        for name, seconds in timings.items():
            _say(f"{name}: {seconds:.1f}s")
        if os.environ.get("PALLET_NODE_SMOKE_KEEP") != "1":
            run(
                kind,
                "delete",
                "cluster",
                "--name",
                CLUSTER,
                "--kubeconfig",
                str(kubeconfig),
                check=False,
            )
            run(docker, "rmi", POD_IMAGE, check=False)
    if os.environ.get("PALLET_NODE_SMOKE_KEEP") != "1":
        assert not _cluster_exists(kind)
    shutil.rmtree(tmp_path / "pod-rootfs", ignore_errors=True)
