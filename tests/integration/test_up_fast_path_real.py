"""`up`'s fast path on the Docker backend: no Typer, pydantic or yaml once the validated
config has a snapshot, and the same results, errors and exit codes as the full CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.real_docker import TEST_IMAGE, DockerEnv, docker
from tests.support.fast_path import heavy_modules_probe

pytestmark = pytest.mark.docker

# runs the console script's code and reports which heavy modules it imported
PROBE = heavy_modules_probe("heavy:")


def run(env: DockerEnv, *args: str, extra: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env={**os.environ, **env.environ(), **(extra or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def heavy(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("heavy:"))


def test_second_up_takes_the_fast_path_with_the_same_result(docker_env: DockerEnv) -> None:
    code, _, err = run(docker_env, "up", "--prefer-docker")
    assert code == 0, err
    assert "'pydantic'" in heavy(err)  # first run validates and stores the snapshot
    first = docker_env.inspect()
    code, out, err = run(docker_env, "up", "--prefer-docker", "--json")
    assert code == 0, err
    assert heavy(err) == "heavy: []"
    assert '"changed": false' in out
    assert run(docker_env, "down")[0] == 0
    code, out, err = run(docker_env, "up", "--backend", "docker", "--timeout", "60")
    assert code == 0 and heavy(err) == "heavy: []", err
    second = docker_env.inspect()
    assert first is not None and second is not None
    # the same container spec either way (the spec hash label is computed from it)
    assert first["Config"]["Labels"] == second["Config"]["Labels"]  # type: ignore[index]
    assert "Registry ready at" in out


def test_fast_path_errors_read_and_exit_like_the_full_cli(
    docker_env: DockerEnv, tmp_path: Path
) -> None:
    assert run(docker_env, "up", "--prefer-docker")[0] == 0
    assert run(docker_env, "down")[0] == 0
    squatter = f"{docker_env.name}-squatter"
    docker("run", "-d", "--name", squatter, "-p", f"127.0.0.1:{docker_env.port}:5000", TEST_IMAGE)
    try:
        code, _, err = run(docker_env, "up", "--prefer-docker")
        assert code == 1 and heavy(err) == "heavy: []"
        assert f"Port {docker_env.port} on 127.0.0.1 is already in use" in err
        assert "fix:" in err and "log:" in err and "Traceback" not in err
    finally:
        docker("container", "rm", "-f", "-v", squatter, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("up", "--prefer-docker", "--port", "5999", "--dry-run"),
        ("up", "--prefer-docker", "--recreate"),
        ("up", "--prefer-docker", "--dry-run"),
        ("up", "--prefer-docker", "--timeout", "-1"),  # a value only the command judges
        ("up", "--backend", "kind", "--dry-run"),
    ],
)
def test_other_options_take_the_full_cli(docker_env: DockerEnv, args: tuple[str, ...]) -> None:
    assert run(docker_env, "up", "--prefer-docker", "--dry-run")[0] == 0  # stores the snapshot
    _, _, err = run(docker_env, *args)
    assert "'pydantic'" in heavy(err)


def test_a_usage_error_fails_fast(docker_env: DockerEnv) -> None:
    code, _, err = run(docker_env, "up", "--prefer-docker", "--timeout", "abc")
    assert code == 2 and heavy(err) == "heavy: []"
    assert err.startswith("pallet-dev: error: Invalid value for '--timeout': ")
    assert docker_env.inspect() is None  # nothing ran


def test_auto_backend_without_docker_flag_takes_the_full_cli(docker_env: DockerEnv) -> None:
    auto = {"PALLET_DEV_BACKEND": "auto"}
    assert run(docker_env, "up", "--prefer-docker", "--dry-run", extra=auto)[0] == 0
    _, _, err = run(docker_env, "up", "--dry-run", extra=auto)
    assert "'pydantic'" in heavy(err)  # auto must check which tools are present


def test_a_changed_config_is_validated_again(docker_env: DockerEnv, tmp_path: Path) -> None:
    config = tmp_path / "pallet-dev.yaml"
    config.write_text("backend: docker\n")
    assert run(docker_env, "up")[0] == 0
    config.write_text("backend: docker\nregistry:\n  prot: 1\n")
    code, _, err = run(docker_env, "up")
    assert code == 2 and "registry.prot: unknown key" in err
