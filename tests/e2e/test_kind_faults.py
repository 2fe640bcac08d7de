"""Bad days on the kind path, provoked for real on one kind cluster shared by the module.

SIGTERM at each step of `up` and `down` and while kind creates the cluster (the moment set
by what pallet-dev has done: a tool call held by a shim on PATH, a ✓ line, the release
seen pending, the node container made), the registry pod deleted in the middle of a push,
the node container restarted (what a dockerd restart does to a cluster; the shared dockerd
itself is never restarted), a full disk under the registry. After each: the next `up`
converges, the user's kubeconfig reaches the cluster, and every digest pushed so far is
still served. The two cluster re-creations are the down/up cycles, the chart installed
afresh once by Helm 3 and once by Helm 4 (a cycle on kind is a new cluster, ~25-50 s:
twenty of them, as on Docker, would take over ten minutes).

The registry's host data folder is a small tmpfs (mounted before the cluster exists, so
the node's bind mount sees it): the full-disk case fills it without touching the host's
disk. Its network is shaped on the node's host-side veth while a push is cut, so the push
is surely still running when the pod goes, whatever the machine's speed.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pallet_dev.probe import http_get
from tests.conftest import require_tool, skip_or_fail
from tests.e2e.conftest import kind_environ
from tests.support.gated_tool import GatedTool, alive, wait_for_line
from tests.support.oci import manifest_digest

# slow (CI runs it): three cluster creations, and Docker's own push retries on a full disk
pytestmark = [pytest.mark.kind_e2e, pytest.mark.slow, pytest.mark.timeout(900)]

DATA_SIZE_MB = 160
REGISTRY = "app.kubernetes.io/name=pallet-registry,app.kubernetes.io/instance=registry"


def run(
    argv: list[str], timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


@dataclass
class KindEnv:
    environ: dict[str, str]
    tools: dict[str, str]
    data_dir: Path
    digests: dict[str, str] = field(default_factory=dict)  # repository:tag -> digest
    images: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.environ["PALLET_DEV_NAME"]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.environ['PALLET_DEV_REGISTRY_PORT']}"

    @property
    def node(self) -> str:
        return f"{self.name}-control-plane"

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        kubeconfig = Path(self.environ["PALLET_DEV_HOME"]) / "state" / f"{self.name}.kubeconfig"
        argv = [self.tools["kubectl"], "--kubeconfig", str(kubeconfig)]
        return run([*argv, "--context", f"kind-{self.name}", "-n", "pallet", *args])

    def pallet(self, *args: str, path: str | None = None) -> subprocess.Popen[str]:
        environ = {**self.environ, **({"PATH": path} if path else {})}
        return subprocess.Popen(
            [sys.executable, "-m", "pallet_dev", *args],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def up(self, *args: str, path: str | None = None) -> str:
        started = time.monotonic()
        code, _, err = finish(self.pallet("up", "--timeout", "600", *args, path=path))
        say(f"up {' '.join(args)}: exit {code} in {time.monotonic() - started:.1f} s")
        assert code == 0, err
        return err

    def push(self, size: int, tag: str) -> subprocess.Popen[str]:
        """`pallet-dev push` of a fresh image holding ``size`` random bytes."""
        image = f"pdtest/{self.name}/{tag}"
        random_image(self.tools["docker"], image, size)
        self.images.append(image)
        return self.pallet("push", image, "--json")

    def pushed(self, proc: subprocess.Popen[str]) -> str:
        code, out, err = finish(proc)
        assert code == 0, err
        return self.record(out)

    def record(self, out: str) -> str:
        doc = json.loads(out)
        self.digests[f"{doc['repository']}:{doc['tag']}"] = doc["digest"]
        return str(doc["digest"])

    def assert_converged(self) -> None:
        """Healthy, and every digest pushed so far served as it was."""
        code, out, err = finish(self.pallet("health", "--json", "--timeout", "5"))
        assert code == 0, out + err
        for reference, digest in self.digests.items():
            assert manifest_digest(self.host, reference) == digest, reference
        # the user's kubeconfig reaches the cluster (whole, not half written)
        user = [self.tools["kubectl"], "--kubeconfig", self.environ["KUBECONFIG"]]
        reached = run([*user, "--context", f"kind-{self.name}", "get", "namespace", "pallet"])
        assert reached.returncode == 0, reached.stderr


def say(message: str) -> None:
    print(f"[kind-faults] {message}", file=sys.stderr, flush=True)


def finish(proc: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


EMPTY_KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: ''\n"


def random_image(docker: str, tag: str, size: int) -> None:
    """An image of one layer of ``size`` random (incompressible) bytes; nothing pulled."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    result = subprocess.run(
        [docker, "import", "-", tag], input=archive.getvalue(), capture_output=True, timeout=300
    )
    assert result.returncode == 0, result.stderr


def interrupted(proc: subprocess.Popen[str], seen: str = "") -> tuple[int, str]:
    """SIGTERM now; the exit code and all of stderr (no traceback, whatever the code)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=120)
    say(f"ended {time.monotonic() - started:.1f} s after SIGTERM: exit {code}")
    err = seen + err
    assert "Traceback" not in err, err
    if code == 130:
        assert "interrupted" in err, err
    return code, err


def orphans(name: str) -> list[str]:
    """Tools pallet-dev started for this environment that still run."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        tool = os.path.basename(argv[0].decode(errors="replace"))
        if tool in ("kind", "helm", "kubectl", "docker") and name.encode() in b" ".join(argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def wait_until(condition: object, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def kenv(
    tools: dict[str, str], node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KindEnv]:
    root = tmp_path_factory.mktemp("kind-faults")
    name = f"pdtest-f{secrets.token_hex(3)}"
    data_dir = root / "home" / "data" / name / "registry"
    data_dir.mkdir(parents=True)
    mounted = run(["mount", "-t", "tmpfs", "-o", f"size={DATA_SIZE_MB}m", "tmpfs", str(data_dir)])
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs for the registry's data: {mounted.stderr.strip()}")
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(EMPTY_KUBECONFIG)
    environ = kind_environ(tools, node_image, name, str(root / "home"), str(kubeconfig))
    env = KindEnv(environ, tools, data_dir)
    try:
        env.up()
        env.pushed(env.push(4096, "before:1"))
        yield env
    finally:
        run([tools["kind"], "delete", "cluster", "--name", name], env=environ)
        run(["umount", str(data_dir)])
        if env.images:
            run([tools["docker"], "image", "rm", "--force", *env.images])


# `up` on the existing cluster with a changed input goes through every step. Each moment is
# reached for sure: a tool call held by a shim, a ✓ line, or the release seen pending.
UP_MOMENTS = {
    "checking docker": ("docker", "version"),
    "waiting for nodes": ("kubectl", "get nodes"),
    "containerd's hosts.toml": ("docker", "hosts.toml"),
    "the user's kubeconfig, half written": ("kubectl", "config set-credentials"),
    "helm upgrade, waiting for the new pod": ("helm", ""),
    "waiting for the registry": ("", ""),
}


@pytest.mark.parametrize("moment", list(UP_MOMENTS))
def test_sigterm_at_each_step_of_up_on_the_cluster(
    kenv: KindEnv, tmp_path: Path, moment: str
) -> None:
    tool, hold = UP_MOMENTS[moment]
    # a changed input takes `up` through every step; for the Helm moment a pod annotation
    # rolls the registry, so Helm waits for a new pod for seconds (the others change the
    # Service only: no roll to wait for)
    key = "podAnnotations" if tool == "helm" else "service.annotations"
    change = ["--set", f"{key}.fault=f-{secrets.token_hex(3)}"]
    seen, pid = "", 0
    if tool == "helm":  # helm really runs; the signal lands once the release is pending
        proc = kenv.pallet("up", *change)
        wait_until(lambda: release_status(kenv).startswith("pending"), "a pending release")
    elif tool:
        if "config" in hold:  # the user's kubeconfig lost its entry: `up` writes it again
            Path(kenv.environ["KUBECONFIG"]).write_text(EMPTY_KUBECONFIG)
        gated = GatedTool(tmp_path / "gated", tool, hold=hold, real=kenv.tools[tool])
        proc = kenv.pallet("up", *change, path=gated.path(kenv.environ["PATH"]))
        pid = gated.wait_for_call(proc)
    else:
        proc = kenv.pallet("up", *change)
        seen = wait_for_line(proc, "chart pallet-registry as release")
    code, err = interrupted(proc, seen)
    say(f"up interrupted ({moment}): exit {code}")
    if tool and tool != "helm":
        gated.release()
    if tool:
        assert code == 130, (code, err)
    else:  # it may have been done already
        assert code in (0, 130), (code, err)
    if pid:
        assert not alive(pid), f"`{tool} {hold}` went on after pallet-dev stopped"
    wait_until(lambda: not orphans(kenv.name), f"no tool left running: {orphans(kenv.name)}", 30)
    kenv.up()  # back to the plain values: the next `up` converges
    kenv.assert_converged()


def release_status(kenv: KindEnv) -> str:
    kubeconfig = Path(kenv.environ["PALLET_DEV_HOME"]) / "state" / f"{kenv.name}.kubeconfig"
    result = run(
        [kenv.tools["helm"], "history", "registry", "-n", "pallet", "--kubeconfig",
         str(kubeconfig), "--kube-context", f"kind-{kenv.name}", "--max", "1", "-o", "json"],
    )  # fmt: skip
    history = json.loads(result.stdout or "[]") if result.returncode == 0 else []
    return str(history[-1]["status"]) if history else ""


DOWN_MOMENTS = {
    "looking for the cluster": "get clusters",
    "deleting the cluster": "delete cluster",
    "after the cluster is gone": "",
}


@pytest.mark.parametrize("moment", list(DOWN_MOMENTS))
def test_sigterm_during_down_then_up_converges(kenv: KindEnv, tmp_path: Path, moment: str) -> None:
    hold = DOWN_MOMENTS[moment]
    gated = GatedTool(
        tmp_path / "gated", "kind", hold=hold or "never-called", real=kenv.tools["kind"]
    )
    proc = kenv.pallet("down", path=gated.path(kenv.environ["PATH"]))
    pid, seen = 0, ""
    if hold:
        pid = gated.wait_for_call(proc)
    else:
        seen = wait_for_line(proc, "Deleting kind cluster")
    code, err = interrupted(proc, seen)
    gated.release()
    assert code in ((130,) if hold else (0, 130)), (code, err)
    if pid:
        assert not alive(pid), f"`kind {hold}` went on after pallet-dev stopped"
    assert any(kenv.data_dir.iterdir()), "the registry's data is gone"
    if hold:
        kenv.up()
        kenv.assert_converged()
    else:  # the cluster is gone: a down/up cycle, the chart installed afresh by Helm 3
        fresh_install_by(kenv, tmp_path, 3)


def test_sigterm_while_kind_creates_the_cluster(kenv: KindEnv, tmp_path: Path) -> None:
    code, _, err = finish(kenv.pallet("down"))
    assert code == 0, err
    proc = kenv.pallet("up", "--timeout", "600")
    # kind has made the node container: the creation is under way
    node_up = ["docker", "ps", "--quiet", "--filter", f"name=^{kenv.node}$"]
    wait_until(lambda: run(node_up).stdout.strip() != "", "the node container")
    code, err = interrupted(proc)
    assert code == 130, (code, err)
    wait_until(lambda: not orphans(kenv.name), f"no tool left running: {orphans(kenv.name)}", 30)
    # the half-made cluster was deleted: a down/up cycle, the chart installed by Helm 4
    assert kenv.name not in run([kenv.tools["kind"], "get", "clusters"]).stdout.split()
    fresh_install_by(kenv, tmp_path, 4)


def with_helm(kenv: KindEnv, tmp_path: Path, major: int) -> str:
    """PATH whose `helm` is Helm ``major`` (PALLET_DEV_HELM3 / PALLET_DEV_HELM4)."""
    helm = require_tool("helm", env_var=f"PALLET_DEV_HELM{major}")
    version = run([helm, "version", "--template", "{{.Version}}"]).stdout
    assert version.startswith(f"v{major}."), version
    bin_dir = tmp_path / f"helm{major}"
    bin_dir.mkdir()
    (bin_dir / "helm").symlink_to(helm)
    return f"{bin_dir}{os.pathsep}{kenv.environ['PATH']}"


def fresh_install_by(kenv: KindEnv, tmp_path: Path, major: int) -> None:
    """`up` on no cluster: a new cluster, the chart installed afresh by Helm ``major``."""
    err = kenv.up(path=with_helm(kenv, tmp_path, major))
    assert f"Installing chart pallet-registry as release 'registry' (Helm {major})" in err, err
    kenv.assert_converged()


def host_veth(node: str) -> str:
    """The host side of the node container's network link."""
    index = run(["docker", "exec", node, "cat", "/sys/class/net/eth0/iflink"]).stdout.strip()
    for line in run(["ip", "-o", "link"]).stdout.splitlines():
        number, _, rest = line.partition(": ")
        if number == index:
            return rest.split(":")[0].split("@")[0]
    raise AssertionError(f"no host link with index {index!r}")


def registry_pods(kenv: KindEnv) -> dict[str, str]:
    """The registry's pods: name -> its Ready condition ("True", "False" or "")."""
    listed = kenv.kubectl(
        "get", "pods", "-l", REGISTRY, "-o",
        'jsonpath={range .items[*]}{.metadata.name} '
        '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    )  # fmt: skip
    pods: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        name, _, ready = line.partition(" ")
        if name:
            pods[name] = ready.strip()
    return pods


def upload_started(data_dir: Path, least: int) -> bool:
    uploads = data_dir / "docker" / "registry" / "v2" / "repositories"
    return any(p.stat().st_size >= least for p in uploads.glob("**/_uploads/*/data"))


def test_registry_pod_deleted_during_a_push(kenv: KindEnv) -> None:
    """The push is cut (or Docker's own retry completes it); a retry works; no manifest is
    ever served half-written; earlier digests stay."""
    veth = host_veth(kenv.node)
    # ~5 MB/s towards the node: a 32 MB layer takes seconds, however fast the machine
    shaped = run(["tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", "40mbit",
                  "burst", "64kb", "latency", "400ms"])  # fmt: skip
    if shaped.returncode != 0:
        skip_or_fail(f"cannot shape the node's link: {shaped.stderr.strip()}")
    try:
        proc = kenv.push(32 * 1024 * 1024, "cut:1")
        wait_until(
            lambda: upload_started(kenv.data_dir, 1024 * 1024) or proc.poll() is not None,
            "the upload",
        )
        if proc.poll() is not None:  # the shaping did not hold it back (seen on a quiet host)
            say("the push ended before the upload was seen: the pod is deleted after it")
        old_pods = set(registry_pods(kenv))
        deleted = kenv.kubectl("delete", "pod", "-l", REGISTRY, "--force", "--grace-period=0")
        assert deleted.returncode == 0, deleted.stderr
    finally:
        run(["tc", "qdisc", "del", "dev", veth, "root"])
    code, out, err = finish(proc)
    say(f"push cut by the pod's deletion: exit {code} {err.strip()[:300]}")
    assert "Traceback" not in err, err
    reference = f"pdtest/{kenv.name}/cut:1"
    # the Deployment's new pod answers again (it may still be starting when Docker's retry
    # already completed the push on it); the force-deleted pod's container may answer for a
    # moment after its deletion, so the new pod must be Ready first
    wait_until(
        lambda: any(
            ready == "True" for name, ready in registry_pods(kenv).items() if name not in old_pods
        ),
        "the registry's new pod",
    )
    wait_until(lambda: finish(kenv.pallet("health", "--timeout", "2"))[0] == 0, "health")
    if code != 0:
        assert code == 1 and "pallet-dev: error: Pushing" in err, (code, err)
        # not served, or served whole
        status, _, _ = http_get(
            f"http://{kenv.host}/v2/{reference.replace(':', '/manifests/')}", 10
        )
        assert status == 404, status
        code, out, err = finish(kenv.pallet("push", reference, "--json"))
        assert code == 0, err
    digest = kenv.record(out)
    kenv.assert_converged()
    local = run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", reference])
    assert digest in local.stdout


def test_node_container_restarted(kenv: KindEnv) -> None:
    """What a dockerd restart does to the cluster, without restarting the shared dockerd."""
    restarted = run(["docker", "restart", kenv.node])
    assert restarted.returncode == 0, restarted.stderr
    err = kenv.up()
    assert "Waiting for 1 node to be Ready" in err, err  # not the unchanged path
    kenv.assert_converged()


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_full_disk_fails_the_push_clearly_and_keeps_what_is_stored(kenv: KindEnv) -> None:
    free = free_bytes(kenv.data_dir)
    proc = kenv.push(free + 4 * 1024 * 1024, "full:1")
    code, out, err = finish(proc)
    assert code == 1, (code, out, err)
    assert "ran out of disk space" in err and "Traceback" not in err, err
    kenv.assert_converged()
    # space freed (the failed upload's leftovers): the next push works
    for upload in kenv.data_dir.glob("docker/registry/v2/repositories/**/_uploads/*"):
        run(["rm", "-rf", str(upload)])
    # distribution 3.1 leaves the file of a PATCH that failed open (PatchBlobData returns
    # before closing the upload): the removed file's space comes back when the registry's Go
    # runtime finalizes it, within its forced-GC period of 2 minutes
    started = time.monotonic()
    wait_until(lambda: free_bytes(kenv.data_dir) >= 16 * 1024 * 1024, "the space freed", 240)
    say(f"space freed {time.monotonic() - started:.1f} s after the leftovers' removal")
    kenv.pushed(kenv.push(4096, "after-full:1"))
    kenv.assert_converged()
