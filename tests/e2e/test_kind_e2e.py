"""The kind backend end to end: a real kind cluster, the real chart, real pushes and pulls.

up -> push an image with the docker client to localhost:<port> -> a pod in the cluster
runs localhost:<port>/<that image> (pulled through containerd's hosts.toml, not a
preloaded copy) -> down -> up -> the image is still there -> down --clean -> gone.

It runs `python -m pallet_dev` as a user would, with PALLET_DEV_HOME and KUBECONFIG
pointed at temporary files (the user's kubeconfig is never touched) and a unique
environment name ``pdtest-<random>``; it deletes only the cluster and images it made.

Where it runs: wherever the kind node image named by PALLET_DEV_KIND_NODE_IMAGE is
present locally. Without such an image it skips, saying so, even in CI (building one
takes ~25 minutes: tests/e2e/kind-node/build-node-image.sh). With the image present
and PALLET_DEV_REQUIRE_REAL=1, anything else missing is a failure, not a skip.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.probe import http_get
from tests.conftest import skip_or_fail
from tests.e2e.conftest import kind_environ
from tests.support.conformance import KNOWN_UNSUPPORTED, conformance_binary, run_conformance
from tests.support.dev_process import DevProcess
from tests.support.gc_scenario import assert_collected, layers_of, push_changing_tags
from tests.support.http_servers import free_port

pytestmark = [pytest.mark.kind_e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

REPOSITORY = "pdtest/hello"


def _run(
    argv: list[str], *, timeout: float = 600, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


def _say(message: str) -> None:
    print(f"[kind-e2e] {message}", file=sys.stderr, flush=True)


@pytest.fixture
def env(tools: dict[str, str], node_image: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    name = f"pdtest-{secrets.token_hex(3)}"
    kubeconfig = tmp_path / "kubeconfig"
    # the "user's" kubeconfig, with a current context of its own that must survive
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: "
        "'https://10.0.0.1'}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: me}\n"
        "users:\n- name: me\n  user: {token: x}\ncurrent-context: prod\n"
    )
    environ = kind_environ(tools, node_image, name, str(tmp_path / "home"), str(kubeconfig))
    yield environ
    # leave nothing behind: our cluster only, by its unique name
    _run([tools["kind"], "delete", "cluster", "--name", name], env=environ, timeout=300)


def pallet_dev(environ: dict[str, str], *args: str, timeout: float = 900) -> dict[str, Any]:
    started = time.monotonic()
    result = _run([sys.executable, "-m", "pallet_dev", *args], env=environ, timeout=timeout)
    _say(f"pallet-dev {' '.join(args)}: exit {result.returncode} in "
         f"{time.monotonic() - started:.1f}s")  # fmt: skip
    assert result.returncode == 0, f"pallet-dev {args} failed:\n{result.stderr}"
    return json.loads(result.stdout) if "--json" in args else {}


def _busybox_image(docker: str, tag: str) -> None:
    """A runnable image from the host's static busybox; nothing is pulled."""
    busybox = shutil.which("busybox")
    if busybox is None:
        skip_or_fail("a static busybox (Debian: busybox-static) is needed to build the test image")
    assert busybox is not None
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "echo", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    result = subprocess.run(
        [docker, "import", "--change", 'CMD ["/bin/sh"]', "-", tag],
        input=archive.getvalue(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _tags(port: str, repository: str) -> list[str]:
    """The repository's tags from the registry API (none when it does not exist)."""
    code, _, body = http_get(f"http://127.0.0.1:{port}/v2/{repository}/tags/list", 10)
    return list(json.loads(body).get("tags") or []) if code == 200 else []


def _run_pod(
    kubectl: list[str],
    image: str,
    command: tuple[str, ...] = ("/bin/sh", "-c", "echo hello-from-the-registry"),
) -> str:
    pod = f"pdtest-pull-{secrets.token_hex(3)}"
    created = _run(
        [*kubectl, "run", pod, f"--image={image}", "--image-pull-policy=Always",
         "--restart=Never", "--command", "--", *command],
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    deadline = time.monotonic() + 300
    phase = ""
    while time.monotonic() < deadline:
        phase = _run([*kubectl, "get", "pod", pod, "-o", "json"]).stdout
        phase = json.loads(phase or "{}").get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(2)
    logs = _run([*kubectl, "logs", pod]).stdout
    if phase != "Succeeded":
        described = _run([*kubectl, "describe", "pod", pod]).stdout
        raise AssertionError(f"pod ended {phase!r}; logs:\n{logs}\n{described[-3000:]}")
    return logs


def _health(environ: dict[str, str]) -> int:
    result = _run(
        [sys.executable, "-m", "pallet_dev", "health", "--json", "--timeout", "0.5"],
        env=environ,
        timeout=60,
    )
    return result.returncode


def _delete_registry_pod_and_watch_it_come_back(
    environ: dict[str, str], kubectl: list[str]
) -> None:
    """With no registry pod, health reports the outage; a deleted pod comes back.

    The outage is made certain (the Deployment scaled to 0) rather than raced: a deleted
    pod can be replaced faster than one `health` run on a busy machine.
    """
    selector = "app.kubernetes.io/name=pallet-registry,app.kubernetes.io/instance=registry"
    ns = [*kubectl, "-n", "pallet"]
    scaled = _run([*ns, "scale", "deployment", "-l", selector, "--replicas=0"])
    assert scaled.returncode == 0, scaled.stderr
    gone = _run([*ns, "wait", "--for=delete", "pod", "-l", selector, "--timeout=120s"])
    assert gone.returncode == 0, gone.stderr
    assert _health(environ) == 1, "health did not report the registry's outage"
    back = _run([*ns, "scale", "deployment", "-l", selector, "--replicas=1"])
    assert back.returncode == 0, back.stderr
    deleted = _run([*ns, "delete", "pod", "-l", selector, "--wait=false"])
    assert deleted.returncode == 0, deleted.stderr
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and _health(environ) != 0:
        time.sleep(1)
    assert _health(environ) == 0, "the registry did not come back after its pod was deleted"


def test_up_push_run_down_up_clean(
    env: dict[str, str],
    tools: dict[str, str],
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    conformance_binary()  # skips (fails in CI) before a cluster is made
    docker, name = tools["docker"], env["PALLET_DEV_NAME"]
    port = env["PALLET_DEV_REGISTRY_PORT"]
    host = f"localhost:{port}"
    image = f"{host}/{REPOSITORY}:1"
    kubectl = [tools["kubectl"], "--kubeconfig", env["KUBECONFIG"], "--context", f"kind-{name}"]
    data_dir = Path(env["PALLET_DEV_HOME"]) / "data" / name / "registry"
    try:
        summary = pallet_dev(env, "up", "--json", "--timeout", "900")
        assert summary["backend"] == "kind" and summary["endpoint"].endswith(f":{port}")
        again = pallet_dev(env, "up", "--json")
        assert again["changed"] is False and again["actions"] == []
        kubeconfig_text = Path(env["KUBECONFIG"]).read_text()
        assert "current-context: prod" in kubeconfig_text and f"kind-{name}" in kubeconfig_text

        hosting = _run([*kubectl, "get", "configmap", "local-registry-hosting", "-n",
                        "kube-public", "-o", "json"])  # fmt: skip
        assert f"localhost:{port}" in json.loads(hosting.stdout)["data"]["localRegistryHosting.v1"]

        # the OCI conformance suite through the NodePort, as pallet-dev deployed the chart
        result = run_conformance(f"localhost:{port}", tmp_path / "conformance")
        record_property("conformance", result.summary("kind backend, in-cluster registry"))
        assert result.unexpected == [], f"{result.unexpected}\n{result.output_tail}"
        assert set(result.by_group) <= set(KNOWN_UNSUPPORTED) and result.passed >= 500

        _busybox_image(docker, image)
        pushed = pallet_dev(env, "push", image, "--json")  # instead of `kind load`
        assert pushed["pushed"] == image and pushed["pull"].startswith(f"{host}/{REPOSITORY}@")
        digests = _run([docker, "image", "inspect", "--format", "{{json .RepoDigests}}", image])
        assert pushed["pull"] in json.loads(digests.stdout)
        assert _tags(port, REPOSITORY) == ["1"]
        assert "hello-from-the-registry" in _run_pod(kubectl, image)

        status = pallet_dev(env, "status", "--json")["backends"]["kind"]
        assert status["exists"] and status["release"]["status"] == "deployed"
        assert status["registry_pod"]["ready"] and status["pvc"]["bound"]

        _delete_registry_pod_and_watch_it_come_back(env, kubectl)
        assert _tags(port, REPOSITORY) == ["1"]  # nothing pushed was lost

        pallet_dev(env, "down", "--json")
        assert data_dir.is_dir() and any(data_dir.iterdir())
        pallet_dev(env, "up", "--json", "--timeout", "900")
        assert _tags(port, REPOSITORY) == ["1"]
        code, _, _ = http_get(f"http://127.0.0.1:{port}/v2/{REPOSITORY}/manifests/1", 10)
        assert code == 200

        pallet_dev(env, "down", "--clean", "--json")
        assert not data_dir.exists()
        clusters = _run([tools["kind"], "get", "clusters"]).stdout.split()
        assert name not in clusters
    finally:
        _run([docker, "rmi", image], timeout=120)


def test_gc_on_kind_keeps_the_newest_and_frees_the_rest(
    env: dict[str, str], tools: dict[str, str]
) -> None:
    """`gc --keep 2` with the registry Deployment scaled to 0 meanwhile: the removed tags
    answer 404, their layers' bytes leave the host data folder, a pod pulls the newest."""
    from tests.integration.test_push_real import local_image

    docker, name = tools["docker"], env["PALLET_DEV_NAME"]
    port = env["PALLET_DEV_REGISTRY_PORT"]
    base, repository = f"http://127.0.0.1:{port}", "pdtest/gc"
    kubectl = [tools["kubectl"], "--kubeconfig", env["KUBECONFIG"], "--context", f"kind-{name}"]
    tags: list[str] = []
    try:
        pallet_dev(env, "up", "--json", "--timeout", "900")
        tags, digests = push_changing_tags(
            repository,
            6,
            local_image,
            lambda tag: str(pallet_dev(env, "push", tag, "--json")["digest"]),
        )
        layers = {digest: layers_of(base, repository, digest) for digest in digests}
        report = pallet_dev(env, "gc", "--keep", "2", "--json")["registries"][0]
        assert "scaled to 0" in report["collection"]["method"]
        assert_collected(base, repository, layers, set(digests[4:]), report)
        newest = f"localhost:{port}/{repository}@{digests[-1]}"
        logs = _run_pod(kubectl, newest, ("/bin/busybox", "cat", "/payload.txt"))
        assert logs.startswith("payload 5")
        pallet_dev(env, "down", "--clean", "--json")
    finally:
        pushed = [f"localhost:{port}/{tag}" for tag in tags]
        _run([docker, "rmi", "-f", *tags, *pushed], timeout=120)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pallet"
AGENTS_BASE_IMAGE = "pallet-dev-examples/busybox:local"


def _raw(kubectl: list[str], path: str) -> str:
    """GET an API path (here: an agent through the API server's service proxy)."""
    result = _run([*kubectl, "get", "--raw", path], timeout=60)
    assert result.returncode == 0, f"{path}: {result.stderr}"
    return result.stdout


def _agent_pods(kubectl: list[str]) -> dict[str, set[str]]:
    """Each agent's serving pods (Running, not terminating after a rollout)."""
    out = _run([*kubectl, "-n", "pallet", "get", "pods", "-l",
                "app.kubernetes.io/instance=agents", "-o", "json"]).stdout  # fmt: skip
    pods: dict[str, set[str]] = {}
    for item in json.loads(out or "{}").get("items") or []:
        meta = item["metadata"]
        if item.get("status", {}).get("phase") == "Running" and not meta.get("deletionTimestamp"):
            pods.setdefault(meta["labels"]["app.kubernetes.io/name"], set()).add(meta["name"])
    return pods


def test_example_agents_on_kind(env: dict[str, str], tools: dict[str, str], tmp_path: Path) -> None:
    """up -> 3 agents healthy through the API server proxy -> the plan travels through the
    registry -> one agent changed: only it rolls out -> down -> up: same digests, no build."""
    docker, name = tools["docker"], env["PALLET_DEV_NAME"]
    if _run([docker, "image", "inspect", AGENTS_BASE_IMAGE]).returncode != 0:
        built = _run(["bash", str(EXAMPLES / "base" / "build-base-image.sh"), AGENTS_BASE_IMAGE])
        assert built.returncode == 0, built.stderr
    project = tmp_path / "pallet"
    shutil.copytree(EXAMPLES, project)
    kubectl = [tools["kubectl"], "--kubeconfig", env["KUBECONFIG"], "--context", f"kind-{name}"]

    def up() -> dict[str, Any]:
        result = _run([sys.executable, "-m", "pallet_dev", "up", "--json", "--timeout", "900"],
                      env=env, cwd=project, timeout=1000)  # fmt: skip
        _say(f"up (agents): exit {result.returncode}")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def health() -> dict[str, Any]:
        result = _run([sys.executable, "-m", "pallet_dev", "health", "--json"],
                      env=env, cwd=project, timeout=60)  # fmt: skip
        return dict(json.loads(result.stdout))

    try:
        first = up()
        digests = {a["name"]: a["digest"] for a in first["agents"]}
        assert sorted(digests) == ["packer", "planner", "tracker"]
        report = health()
        assert report["status"] == "healthy", report
        assert all(a["backend"] == "kind" and "/proxy/healthz" in a["url"]
                   for a in report["agents"])  # fmt: skip

        proxy = "/api/v1/namespaces/pallet/services/{}:8080/proxy/cgi-bin/{}"
        assert "plan from planner (planner-1)" in _raw(kubectl, proxy.format("tracker", "artifact"))
        seen = _raw(kubectl, proxy.format("packer", "env"))
        assert "PALLET_REGISTRY=registry-pallet-registry.pallet.svc.cluster.local:5000" in seen
        assert "GREETING=hello" in seen and f"PALLET_ENVIRONMENT={name}" in seen
        _same_on_docker(env, project, digests, seen)

        again = up()
        assert not any(a["built"] for a in again["agents"])
        # someone points an agent at another image with kubectl: the next `up` wins back
        tagged = f"localhost:{env['PALLET_DEV_REGISTRY_PORT']}/{name}/tracker:by-hand"
        _run([docker, "tag", f"{tagged.rsplit(':', 1)[0]}@{digests['tracker']}", tagged])
        assert _run([docker, "push", tagged]).returncode == 0
        set_image = _run([*kubectl, "-n", "pallet", "set", "image", "deployment/tracker",
                          f"tracker={tagged}"])  # fmt: skip
        assert set_image.returncode == 0, set_image.stderr
        restored = _run([sys.executable, "-m", "pallet_dev", "up", "--json"], env=env,
                        cwd=project, timeout=600)  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        image = _run([*kubectl, "-n", "pallet", "get", "deployment", "tracker", "-o",
                      "jsonpath={.spec.template.spec.containers[0].image}"]).stdout  # fmt: skip
        assert image.endswith(digests["tracker"]), image
        pods = _agent_pods(kubectl)
        (project / "agents" / "packer" / "VERSION").write_text("packer-2\n")
        changed = up()
        assert [a["name"] for a in changed["agents"] if a["built"]] == ["packer"]
        after = _agent_pods(kubectl)
        assert after["planner"] == pods["planner"] and after["tracker"] == pods["tracker"]
        assert not after["packer"] & pods["packer"], "packer's pod was not replaced"
        assert "packer-2" in _raw(kubectl, proxy.format("packer", "version"))

        new_digests = _dev_loop_on_kind(env, project, kubectl, proxy)
        pallet_dev(env, "down", "--json")
        back = up()
        assert {a["name"]: a["digest"] for a in back["agents"]} == new_digests
        assert not any(a["built"] for a in back["agents"])
        assert health()["status"] == "healthy"
        pallet_dev(env, "down", "--clean", "--json")
    finally:
        images = _run(
            [
                docker,
                "image",
                "ls",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                f"localhost:{env['PALLET_DEV_REGISTRY_PORT']}/{name}/*",
            ]
        ).stdout.split()
        if images:
            _run([docker, "image", "rm", "--force", *images])


def _dev_loop_on_kind(
    env: dict[str, str], project: Path, kubectl: list[str], proxy: str
) -> dict[str, str]:
    """`dev`: an edit rolls out packer alone; a broken build keeps the old pod serving;
    the fix recovers; SIGTERM exits 130. Returns the agents' digests afterwards."""
    dev = DevProcess(env, project, cycle_timeout=180)
    try:
        dev.next("watching", timeout=600)
        pods = _agent_pods(kubectl)
        version = project / "agents" / "packer" / "VERSION"
        version.write_text("packer-3\n")
        cycle = dev.next("cycle", timeout=300)
        assert cycle["agent"] == "packer" and cycle["ok"], cycle
        _say(f"dev cycle on kind: {cycle['seconds']} s (build {cycle['build']}, push "
             f"{cycle['push']}, rollout {cycle['rollout']})")  # fmt: skip
        assert "packer-3" in _raw(kubectl, proxy.format("packer", "version"))
        after = _agent_pods(kubectl)
        assert after["planner"] == pods["planner"] and after["tracker"] == pods["tracker"]

        dockerfile = project / "agents" / "packer" / "Dockerfile"
        good = dockerfile.read_text()
        dockerfile.write_text(good + "RUN exit 5\n")
        broken = dev.next("cycle", timeout=300)
        assert not broken["ok"] and broken["phase"] == "build", broken
        assert "packer-3" in _raw(kubectl, proxy.format("packer", "version"))
        dockerfile.write_text(good)
        version.write_text("packer-4\n")
        fixed = dev.next("cycle", timeout=300)
        assert fixed["ok"], fixed
        assert "packer-4" in _raw(kubectl, proxy.format("packer", "version"))
    finally:
        code = dev.stop()
    assert code == 130, "".join(dev.stderr)
    result = _run([sys.executable, "-m", "pallet_dev", "up", "--json"], env=env, cwd=project)
    assert result.returncode == 0, result.stderr
    return {a["name"]: a["digest"] for a in json.loads(result.stdout)["agents"]}


def _same_on_docker(
    env: dict[str, str], project: Path, kind_digests: dict[str, str], kind_env: str
) -> None:
    """The Docker backend starts the same agents identically: the same image digests and
    the same environment, but for the registry's address (and the environment's name)."""
    docker_env = {
        **env,
        "PALLET_DEV_BACKEND": "docker",
        "PALLET_DEV_NAME": env["PALLET_DEV_NAME"] + "-d",
        "PALLET_DEV_REGISTRY_PORT": str(free_port()),
        "PALLET_DEV_HOME": env["PALLET_DEV_HOME"] + "-docker",
    }
    try:
        result = _run([sys.executable, "-m", "pallet_dev", "up", "--json"], env=docker_env,
                      cwd=project, timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stderr
        on_docker = {a["name"]: a["digest"] for a in json.loads(result.stdout)["agents"]}
        assert on_docker == kind_digests, "the backends run different images"
        health = _run([sys.executable, "-m", "pallet_dev", "health", "--json"], env=docker_env,
                      cwd=project, timeout=60)  # fmt: skip
        url = {a["name"]: a["url"] for a in json.loads(health.stdout)["agents"]}["packer"]
        code, _, body = http_get(url.replace("/healthz", "/cgi-bin/env"), 10)
        assert code == 200

        def comparable(text: str) -> list[str]:
            skip = ("PALLET_REGISTRY=", "PALLET_ENVIRONMENT=")
            return sorted(line for line in text.splitlines() if line and not line.startswith(skip))

        assert comparable(body.decode()) == comparable(kind_env)
        assert f"PALLET_REGISTRY={docker_env['PALLET_DEV_NAME']}-registry:5000" in body.decode()
    finally:
        _run([sys.executable, "-m", "pallet_dev", "down", "--clean"], env=docker_env,
             cwd=project, timeout=300)  # fmt: skip
