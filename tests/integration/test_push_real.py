"""`pallet-dev push` against the real dockerd and the registry of the Docker backend.

(The kind backend's registry is reached through the same localhost:<port>; the kind
end-to-end test pushes there with `pallet-dev push` too.)"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.support.real_docker import DockerEnv, docker
from tests.support.fast_path import heavy_modules_probe

pytestmark = [pytest.mark.docker]


def pallet_dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pallet_dev", *args], capture_output=True, text=True, timeout=300
    )


def local_image(tag: str, payload: str) -> None:
    """A small runnable image built here (static busybox + a file); nothing is pulled."""
    busybox = shutil.which("busybox")
    if busybox is None:
        skip_or_fail("a static busybox (Debian: busybox-static) is needed to build the image")
    assert busybox is not None
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        data = payload.encode()
        info = tarfile.TarInfo("payload.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = subprocess.run(
        ["docker", "import", "--change", 'CMD ["/bin/busybox", "cat", "/payload.txt"]', "-", tag],
        input=archive.getvalue(),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_push_round_trip_and_only_missing_layers_move(docker_env: DockerEnv) -> None:
    tag = f"pdt-push/{docker_env.name}:1"
    local_image(tag, "one")
    try:
        assert pallet_dev("up", "--prefer-docker", "--json").returncode == 0
        first = pallet_dev("push", tag, "--json")
        assert first.returncode == 0, first.stderr
        doc = json.loads(first.stdout)
        assert doc["pushed"] == f"localhost:{docker_env.port}/pdt-push/{docker_env.name}:1"
        # the digest pods pull is the one Docker recorded for the pushed name
        digests = docker("image", "inspect", "--format", "{{json .RepoDigests}}", tag).stdout
        assert doc["pull"] in json.loads(digests)
        assert doc["pull_in_network"].startswith(f"{docker_env.container}:5000/")
        # the pushed name runs from the registry (removed locally first: really pulled)
        docker("rmi", doc["pushed"], tag)
        run = docker("run", "--rm", doc["pull"])
        assert run.stdout.strip() == "one"
        docker("tag", doc["pull"], tag)  # what was pulled, under its first name again

        again = pallet_dev("push", tag, "--as", "team/api:dev", "--json")
        assert again.returncode == 0, again.stderr
        same = json.loads(again.stdout)
        assert same["digest"] == doc["digest"] and same["repository"] == "team/api"
    finally:
        docker("rmi", "-f", tag, check=False)
        docker("rmi", "-f", f"localhost:{docker_env.port}/pdt-push/{docker_env.name}:1",
               check=False)  # fmt: skip


def test_push_errors_are_one_sentence_with_an_exit_code(docker_env: DockerEnv) -> None:
    missing = pallet_dev("push", "pdt-push/never-built:1")
    assert missing.returncode == 2 and "is not in this host's Docker" in missing.stderr
    assert "Traceback" not in missing.stderr
    tag = f"pdt-push/{docker_env.name}:down"
    local_image(tag, "x")
    try:
        down = pallet_dev("push", tag)  # nothing is up
        assert down.returncode == 3 and "does not answer" in down.stderr
        assert "pallet-dev up" in down.stderr
        # the name the push added goes again; the image keeps its own name
        pushed_name = f"localhost:{docker_env.port}/{tag}"
        assert docker("image", "inspect", pushed_name, check=False).returncode != 0
        assert docker("image", "inspect", tag, check=False).returncode == 0
    finally:
        docker("rmi", "-f", tag, f"localhost:{docker_env.port}/{tag}", check=False)


def test_push_target_names(tmp_path: Path) -> None:
    from pallet_dev.commands.push import push_target

    assert push_target("nginx:1.27", None) == ("nginx", "1.27")
    assert push_target("docker.io/library/nginx", None) == ("nginx", "latest")
    assert push_target("ghcr.io/acme/api:1@sha256:" + "a" * 64, None) == ("acme/api", "1")
    assert push_target("localhost:5001/x/y:2", None) == ("x/y", "2")
    assert push_target("anything", "team/api:dev") == ("team/api", "dev")
    for bad in ("Team/API", "", "/api", "a//b", "a b", "team/api:dev:x", "api:v1/x"):
        with pytest.raises(Exception, match="not a repository name"):
            push_target("x", bad)
    with pytest.raises(Exception, match="image ID"):
        push_target("sha256:" + "a" * 64, None)


FAST_PROBE = heavy_modules_probe()


def test_push_takes_the_fast_path_once_the_config_is_validated(docker_env: DockerEnv) -> None:
    tag = f"pdt-push/{docker_env.name}:fast"
    local_image(tag, "fast")
    try:
        assert pallet_dev("up", "--prefer-docker").returncode == 0  # validates, stores a snapshot
        result = subprocess.run(
            [sys.executable, "-c", FAST_PROBE, "push", tag, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines()[-1] == "[]"  # no Typer, pydantic or yaml
        assert json.loads(result.stdout)["digest"].startswith("sha256:")
    finally:
        docker("rmi", "-f", tag, f"localhost:{docker_env.port}/{tag}", check=False)


def test_a_closed_pipe_is_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pallet_dev.outcome import run_guarded

    def closed() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", io.StringIO())  # no real descriptor to redirect
    assert run_guarded(closed, debug=False, log_file=lambda: None) == 1
    assert "internal error" not in capsys.readouterr().err
