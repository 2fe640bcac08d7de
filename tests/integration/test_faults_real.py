"""Bad days, provoked for real: races, interrupts, killed registries, broken tools."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.gated_tool import GatedTool, alive, wait_for_line
from tests.support.oci import manifest_exists, push_artifact
from tests.support.real_docker import DockerEnv, docker

pytestmark = pytest.mark.docker

PALLET_DEV = str(Path(sys.executable).parent / "pallet-dev")


def pallet(
    env: DockerEnv, *argv: str, extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PALLET_DEV, *argv],
        env={**os.environ, **env.environ(), **(extra or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def registry_containers(env: DockerEnv) -> list[str]:
    out = docker(
        "container",
        "ls",
        "--all",
        "--format",
        "{{.Names}}",
        "--filter",
        f"label=dev.pallet.environment={env.name}",
    ).stdout
    # the pull-through caches (docs/mirrors.md) are the environment's too, not registries
    caches = f"{env.name}-mirror-"
    return [line for line in out.splitlines() if line and not line.startswith(caches)]


def health(env: DockerEnv, timeout: float = 1.0) -> tuple[int, dict[str, object]]:
    code, out, _ = finish(pallet(env, "health", "--json", "--timeout", str(timeout)))
    return code, json.loads(out)


def test_two_concurrent_ups_make_one_healthy_environment(docker_env: DockerEnv) -> None:
    first, second = pallet(docker_env, "up"), pallet(docker_env, "up")
    results = [finish(first), finish(second)]
    assert [code for code, _, _ in results] == [0, 0], results
    assert registry_containers(docker_env) == [docker_env.container]
    assert health(docker_env)[0] == 0


def test_up_racing_down_converges(docker_env: DockerEnv) -> None:
    assert finish(pallet(docker_env, "up"))[0] == 0
    racing = [pallet(docker_env, "down"), pallet(docker_env, "up")]
    assert [finish(proc)[0] for proc in racing] == [0, 0]
    # whichever won last, the state is whole: running and healthy, or gone
    containers = registry_containers(docker_env)
    assert containers in ([], [docker_env.container])
    if containers:
        assert health(docker_env)[0] == 0
    assert finish(pallet(docker_env, "up"))[0] == 0
    assert health(docker_env)[0] == 0


def test_lock_wait_message_when_another_run_holds_it(docker_env: DockerEnv) -> None:
    import fcntl

    lock_path = docker_env.home / "state" / f"{docker_env.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run holds the environment's lock
        proc = pallet(docker_env, "up")
        # the line it prints as it starts waiting: it reached the lock wait
        seen = wait_for_line(proc, "Another pallet-dev run is changing")
        assert proc.poll() is None  # waiting, not failing
        assert registry_containers(docker_env) == []  # and nothing done while it waits
    code, _, err = finish(proc)
    assert code == 0 and "Another pallet-dev run is changing" in seen + err


STARTED = "✓ Started the registry container"
READY = "✓ Waiting for the registry"


# the moments of a fresh `up` on Docker (one docker call, `run`, then HTTP polling), each
# reached by a marker: at once (start-up, perhaps before pallet-dev's handler exists),
# inside `docker run`, while waiting for the registry, after the last step
@pytest.mark.parametrize("moment", ["start-up", "docker run", "waiting", "done"])
def test_sigterm_at_any_point_of_up_leaves_a_convergent_state(
    docker_env: DockerEnv, tmp_path: Path, moment: str
) -> None:
    gated = GatedTool(tmp_path / "gated", "docker")
    proc = pallet(docker_env, "up", extra=gated.env())
    seen, held = "", 0
    if moment == "docker run":
        held = gated.wait_for_call(proc)
    if moment in ("waiting", "done"):
        gated.release()
        seen = wait_for_line(proc, STARTED if moment == "waiting" else READY)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=30)
    gated.release()
    err = seen + err
    assert "Traceback" not in err, err
    if code == 130:
        assert "interrupted" in err, err
    if moment == "start-up":
        # the default way (-SIGTERM) before the handler was installed, or by the handler
        assert code in (-signal.SIGTERM, 130), (code, out, err)
        assert not gated.calls.exists()
    elif moment == "docker run":
        assert code == 130, (code, out, err)
        assert not alive(held), "the docker call went on after pallet-dev stopped"
    elif moment == "waiting":
        # interrupted, or it was faster; -SIGTERM only once done (interpreter shutdown)
        assert code in (0, 130) or code == -signal.SIGTERM and READY in err, (code, out, err)
    else:  # after its last step: it ends as it was going to, or is interrupted on the way
        assert code in (0, 130, -signal.SIGTERM), (code, out, err)
    if moment in ("start-up", "docker run"):  # nothing was made
        assert registry_containers(docker_env) == [] and not docker_env.volume_exists()
    # whichever way it ended: the next up converges to one healthy registry; down --clean
    # leaves nothing
    assert finish(pallet(docker_env, "up"))[0] == 0
    assert registry_containers(docker_env) == [docker_env.container]
    assert health(docker_env)[0] == 0
    assert finish(pallet(docker_env, "down", "--clean"))[0] == 0
    assert registry_containers(docker_env) == [] and not docker_env.volume_exists()


# `down`'s docker calls on an environment without agents, in order; the signal lands while
# pallet-dev waits in the chosen one (held by the shim), so each moment is reached for sure
DOWN_CALLS = [
    "container ls",
    "container inspect",
    "container rm",
    "network inspect",
    "volume inspect",
]


@pytest.mark.parametrize("held", DOWN_CALLS)
def test_sigterm_during_down_never_loses_data(
    docker_env: DockerEnv, tmp_path: Path, held: str
) -> None:
    assert finish(pallet(docker_env, "up"))[0] == 0
    push_artifact(docker_env.host, "keep/during-down:1", os.urandom(2048), tmp_path / "p")
    gated = GatedTool(tmp_path / "gated", "docker", hold=held)
    proc = pallet(docker_env, "down", extra=gated.env())
    pid = gated.wait_for_call(proc)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=30)
    gated.release()
    # inside a tool call the handler is installed: always the documented interrupt
    assert code == 130 and "interrupted" in err and "Traceback" not in err, (code, out, err)
    assert not alive(pid), f"`docker {held}` went on after pallet-dev stopped"
    removed = held in ("network inspect", "volume inspect")  # the container went before it
    assert registry_containers(docker_env) == ([] if removed else [docker_env.container])
    assert docker_env.volume_exists()
    assert finish(pallet(docker_env, "down"))[0] == 0
    assert registry_containers(docker_env) == []
    assert finish(pallet(docker_env, "up"))[0] == 0
    assert manifest_exists(docker_env.host, "keep/during-down:1")


def test_docker_daemon_gone_before_and_during_up(docker_env: DockerEnv, tmp_path: Path) -> None:
    from tests.support.socket_proxy import DockerSocketProxy

    proxy = DockerSocketProxy(tmp_path / "docker.sock").start()
    via_proxy = {"DOCKER_HOST": proxy.docker_host}
    try:
        assert finish(pallet(docker_env, "up", extra=via_proxy))[0] == 0
        push_artifact(docker_env.host, "daemon/gone:1", os.urandom(1024), tmp_path / "p")

        proxy.stop()  # the daemon is gone before the command starts
        code, _, err = finish(pallet(docker_env, "up", "--recreate", extra=via_proxy))
        assert code == 3, err
        assert "The Docker daemon is not running." in err and "Traceback" not in err

        proxy.start()  # ... and goes away in the middle of `up`: while `docker run` is held
        gated = GatedTool(tmp_path / "gated", "docker", hold="run --detach")
        proc = pallet(docker_env, "up", "--recreate", extra={**via_proxy, **gated.env()})
        gated.wait_for_call(proc)
        proxy.stop()
        with pytest.raises(OSError):  # really gone: its socket refuses
            socket.socket(socket.AF_UNIX).connect(str(proxy.path))
        gated.release()
        code, _, err = finish(proc, timeout=60)
        assert code in (1, 3), err  # 3 when a call could not connect, 1 when one was cut
        assert "pallet-dev: error:" in err and "Traceback" not in err
    finally:
        proxy.stop()
    # the daemon is back: the next `up` converges and nothing pushed was lost
    assert finish(pallet(docker_env, "up"))[0] == 0
    assert health(docker_env)[0] == 0
    assert manifest_exists(docker_env.host, "daemon/gone:1")


def test_killed_registry_comes_back_with_its_data(docker_env: DockerEnv, tmp_path: Path) -> None:
    assert finish(pallet(docker_env, "up"))[0] == 0
    push_artifact(docker_env.host, "crash/test:1", os.urandom(4096), tmp_path / "p")
    pid = int(docker("inspect", "--format", "{{.State.Pid}}", docker_env.container).stdout)
    os.kill(pid, signal.SIGKILL)  # the process dies; Docker's restart policy restarts it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and health(docker_env, 0.5)[0] != 0:
        time.sleep(0.2)
    assert health(docker_env)[0] == 0
    restarts = docker("inspect", "--format", "{{.RestartCount}}", docker_env.container).stdout
    assert int(restarts) >= 1
    assert manifest_exists(docker_env.host, "crash/test:1")


def test_health_reports_an_outage_while_it_lasts(docker_env: DockerEnv) -> None:
    assert finish(pallet(docker_env, "up"))[0] == 0
    docker("pause", docker_env.container)
    try:
        started = time.monotonic()
        code, doc = health(docker_env, 0.5)
        assert code == 1 and doc["status"] == "unhealthy"
        assert time.monotonic() - started < 10
    finally:
        docker("unpause", docker_env.container)
    assert health(docker_env)[0] == 0


def test_non_loopback_bind_warns_that_the_registry_is_exposed(docker_env: DockerEnv) -> None:
    code, _, err = finish(
        pallet(docker_env, "up", "--dry-run", extra={"PALLET_DEV_REGISTRY_BIND_ADDRESS": "0.0.0.0"})
    )
    assert code == 0
    code, _, err = finish(
        pallet(docker_env, "up", extra={"PALLET_DEV_REGISTRY_BIND_ADDRESS": "0.0.0.0"})
    )
    assert code == 0 and "no authentication" in err and "reachable from other machines" in err


@pytest.mark.slow
def test_pushed_content_survives_twenty_down_up_cycles(
    docker_env: DockerEnv, tmp_path: Path
) -> None:
    assert finish(pallet(docker_env, "up"))[0] == 0
    digest = push_artifact(docker_env.host, "cycles/data:v1", os.urandom(64 * 1024), tmp_path / "p")
    for cycle in range(20):
        assert finish(pallet(docker_env, "down"))[0] == 0, f"down in cycle {cycle}"
        code, _, err = finish(pallet(docker_env, "up"))
        assert code == 0, f"up in cycle {cycle}: {err}"
        assert manifest_exists(docker_env.host, "cycles/data:v1"), f"lost in cycle {cycle}"
    from tests.support.oci import manifest_digest

    assert manifest_digest(docker_env.host, "cycles/data:v1") == digest


def test_a_push_cut_by_the_registry_going_away_fails_clearly(
    docker_env: DockerEnv, tmp_path: Path
) -> None:
    """The registry is killed while a layer is surely half sent (a proxy holds the upload
    after 1 MiB) and stays unreachable until Docker's own retries gave up."""
    from tests.support.http_servers import free_port
    from tests.support.oci import manifest_digest
    from tests.support.socket_proxy import TcpProxy

    assert finish(pallet(docker_env, "up"))[0] == 0
    before = push_artifact(docker_env.host, "cut/before:1", os.urandom(2048), tmp_path / "p")
    image = f"pdtest/{docker_env.name}/cut:1"
    layer = os.urandom(8 * 1024 * 1024)
    imported = subprocess.run(["docker", "import", "-", image], input=_tar(layer),
                              capture_output=True, timeout=120)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    proxy = TcpProxy(port, docker_env.port, hold=b"PATCH /v2/", hold_after=1024 * 1024).start()
    try:
        proc = pallet(docker_env, "push", image, extra={"PALLET_DEV_REGISTRY_PORT": str(port)})
        assert proxy.holding.wait(120), "the upload never started"
        docker("kill", docker_env.container)
        proxy.stop()  # the registry is unreachable until the push ends
        code, out, err = finish(proc, timeout=300)
    finally:
        proxy.stop()
        docker("image", "rm", "--force", f"localhost:{port}/{image}", check=False)
    assert code == 1, (code, out, err)
    assert err.count("pallet-dev: error: Pushing ") == 1 and "Traceback" not in err, err
    assert finish(pallet(docker_env, "up"))[0] == 0  # the registry back
    assert not manifest_exists(docker_env.host, image)  # nothing half-written served
    assert manifest_digest(docker_env.host, "cut/before:1") == before
    try:
        code, out, err = finish(pallet(docker_env, "push", image, "--json"))
        assert code == 0, err
        assert manifest_digest(docker_env.host, image) == json.loads(out)["digest"]
    finally:
        docker("image", "rm", "--force", image, f"localhost:{docker_env.port}/{image}", check=False)


def test_a_full_volume_fails_the_push_clearly_and_keeps_what_is_stored(
    docker_env: DockerEnv, tmp_path: Path
) -> None:
    """The Docker backend's data volume is a 24 MiB tmpfs (made before `up`, which keeps an
    existing volume): a 40 MiB layer fills it. The registry answers Docker a bare 500; its
    own log says "no space left on device", and so does the push's error."""
    from tests.support.oci import manifest_digest

    made = docker("volume", "create", "--driver", "local", "--opt", "type=tmpfs",
                  "--opt", "device=tmpfs", "--opt", "o=size=24m", docker_env.volume)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert finish(pallet(docker_env, "up"))[0] == 0
    before = push_artifact(docker_env.host, "full/before:1", os.urandom(2048), tmp_path / "p")
    image = f"pdtest/{docker_env.name}/full:1"
    imported = subprocess.run(["docker", "import", "-", image], capture_output=True,
                              input=_tar(os.urandom(40 * 1024 * 1024)), timeout=120)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    try:
        code, out, err = finish(pallet(docker_env, "push", image), timeout=300)
    finally:
        docker("image", "rm", "--force", image, f"localhost:{docker_env.port}/{image}", check=False)
    assert code == 1, (code, out, err)
    assert "the registry ran out of disk space" in err, err
    assert err.count("pallet-dev: error:") == 1 and "Traceback" not in err, err
    assert manifest_digest(docker_env.host, "full/before:1") == before  # nothing stored changed
    assert not manifest_exists(docker_env.host, image)


def _tar(payload: bytes) -> bytes:
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return archive.getvalue()
