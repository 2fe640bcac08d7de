"""The docker adapter against fake `docker` executables on PATH: odd output, hangs, errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pallet_dev.errors import CommandTimeout, DaemonUnavailable, OperationFailed
from pallet_dev.runner import Runner
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.docker_types import ContainerInfo, classify_daemon_error, parse_size

FakeDocker = Callable[[str], None]


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    def install(script: str) -> None:
        tool = tmp_path / "docker"
        tool.write_text("#!/bin/sh\n" + script + "\n")
        tool.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin")

    return install


def test_unexpected_version_output_is_a_clear_error(fake_docker: FakeDocker) -> None:
    fake_docker("echo 'this is not docker'")
    with pytest.raises(OperationFailed, match="printed unexpected output"):
        Docker(Runner()).ping()


def test_empty_server_version_means_daemon_down(fake_docker: FakeDocker) -> None:
    fake_docker("echo '\"\"'")
    with pytest.raises(DaemonUnavailable, match="not running"):
        Docker(Runner()).ping()


def test_a_hanging_docker_is_stopped_by_the_timeout(fake_docker: FakeDocker) -> None:
    fake_docker("sleep 30")
    with pytest.raises(CommandTimeout, match="did not finish within 0.5 s"):
        Docker(Runner(), timeout=0.5).ping()


def test_inspect_output_that_is_not_json(fake_docker: FakeDocker) -> None:
    fake_docker("echo '{broken'")
    with pytest.raises(OperationFailed, match="not JSON"):
        Docker(Runner()).inspect_container("x")


def test_daemon_errors_from_any_call_are_classified(fake_docker: FakeDocker) -> None:
    fake_docker(
        "echo 'Got permission denied while trying to connect to the Docker daemon socket' >&2;"
        " exit 1"
    )
    with pytest.raises(DaemonUnavailable, match="Permission denied") as caught:
        Docker(Runner()).inspect_container("x")
    assert "docker' group" in str(caught.value)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
            "not running",
        ),
        ("permission denied while trying to connect", "Permission denied"),
        ("error during connect: Get http://...", "Cannot reach"),
        ("something else entirely", None),
    ],
)
def test_classify_daemon_error(stderr: str, expected: str | None) -> None:
    error = classify_daemon_error(stderr)
    if expected is None:
        assert error is None
    else:
        assert error is not None and expected in error.message and error.exit_code == 3


@pytest.mark.parametrize(
    ("text", "size"),
    [("0B", 0), ("12.5MB", 12_500_000), ("3kB", 3000), ("1.2GB", 1_200_000_000), ("?", None)],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert parse_size(text) == size


def test_container_info_tolerates_sparse_inspect_output() -> None:
    info = ContainerInfo.from_inspect({"Id": "abc", "Name": "/x"})
    assert info.name == "x" and info.status == "unknown" and info.ports == ()
    assert not info.running


def test_the_builder_answer_is_kept_until_docker_or_its_plugins_change(
    fake_docker: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker buildx version` is asked once; the answer is kept under the docker binary's
    and the plugin folders' modification times, and asked again when one changes."""
    asked = tmp_path / "asked"
    config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    fake_docker(f'echo x >> {asked}\n[ "$1" = buildx ] && [ -e {tmp_path}/has-buildx ]')
    memo = tmp_path / "state" / "host" / "docker-builder.json"
    docker = Docker(Runner())

    def answers() -> tuple[bool, int]:
        legacy = docker.legacy_builder(memo)
        return legacy, len(asked.read_text().splitlines()) if asked.exists() else 0

    assert answers() == (True, 1), "no buildx plugin: the legacy builder"
    assert answers() == (True, 1), "kept: not asked again"
    (config / "cli-plugins").mkdir(parents=True)  # a plugin folder appears
    (tmp_path / "has-buildx").touch()
    assert answers() == (False, 2), "asked again after the plugin folders changed"
    assert answers() == (False, 2)
    memo.write_text("{not json")
    assert answers() == (False, 3), "an unreadable memo is asked again"
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    assert answers() == (True, 3), "DOCKER_BUILDKIT=0 is the legacy builder, without asking"
    assert docker.legacy_builder(None) is True
