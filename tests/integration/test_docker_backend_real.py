"""The Docker backend against a real dockerd, a real registry and a real OCI client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pallet_dev.cli import run
from tests.support.http_servers import free_port
from tests.support.oci import catalog, manifest_exists, pull_artifact, push_artifact
from tests.support.real_docker import DockerEnv, docker

pytestmark = pytest.mark.docker


def cli(*argv: str) -> int:
    return run(list(argv))


def test_push_survives_down_and_up_and_clean_removes_everything(
    docker_env: DockerEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("up", "--timeout", "60") == 0
    assert "Registry ready at" in capsys.readouterr().out
    payload = os.urandom(256 * 1024)
    digest = push_artifact(docker_env.host, "pallet/blob:v1", payload, tmp_path / "push")

    assert cli("down") == 0
    out = capsys.readouterr().out
    assert f"container {docker_env.container}" in out and "Kept: volume" in out
    assert docker_env.inspect() is None and docker_env.volume_exists()

    assert cli("up", "--timeout", "60") == 0
    assert pull_artifact(docker_env.host, "pallet/blob:v1", tmp_path / "pull") == payload
    assert push_artifact(docker_env.host, "pallet/blob:v1", payload, tmp_path / "again") == digest

    (docker_env.home / "logs").mkdir(parents=True, exist_ok=True)
    assert cli("down", "--clean") == 0
    assert docker_env.inspect() is None and not docker_env.volume_exists()
    assert not (docker_env.home / "logs").exists()
    assert not (docker_env.home / "data" / docker_env.name).exists()
    assert cli("down", "--clean") == 0
    assert "Nothing to remove" in capsys.readouterr().out


def test_up_twice_changes_nothing(
    docker_env: DockerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("up", "--json") == 0
    first = docker_env.inspect()
    assert cli("up", "--json") == 0
    import json

    outputs = [json.loads(chunk) for chunk in _json_chunks(capsys.readouterr().out)]
    assert outputs[0]["changed"] is True and outputs[1]["changed"] is False
    assert outputs[1]["actions"] == []
    second = docker_env.inspect()
    assert first is not None and second is not None
    assert first["Id"] == second["Id"]
    assert first["State"]["StartedAt"] == second["State"]["StartedAt"]  # type: ignore[index]


def test_registry_is_published_on_loopback_only(docker_env: DockerEnv) -> None:
    assert cli("up") == 0
    info = docker_env.inspect()
    assert info is not None
    bindings = info["HostConfig"]["PortBindings"]["5000/tcp"]  # type: ignore[index]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(docker_env.port)}]
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"  # type: ignore[index]
    env = info["Config"]["Env"]  # type: ignore[index]
    assert "OTEL_TRACES_EXPORTER=none" in env and "REGISTRY_STORAGE_DELETE_ENABLED=true" in env
    if sys.platform.startswith("linux"):
        listeners = _tcp_listeners(docker_env.port)
        assert listeners and all(address == "127.0.0.1" for address in listeners), listeners


def test_stopped_container_is_started_and_config_change_recreates_keeping_data(
    docker_env: DockerEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("up") == 0
    push_artifact(docker_env.host, "keep/me:1", b"data that must survive", tmp_path / "p")
    docker("container", "stop", docker_env.container)
    assert cli("up") == 0
    assert manifest_exists(docker_env.host, "keep/me:1")

    docker_env.port = free_port()
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(docker_env.port))
    assert cli("up") == 0
    assert manifest_exists(docker_env.host, "keep/me:1")
    assert catalog(docker_env.host) == ["keep/me"]


def test_port_taken_by_another_container_fails_before_creating_anything(
    docker_env: DockerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.real_docker import TEST_IMAGE

    squatter = f"{docker_env.name}-squatter"
    docker("run", "-d", "--name", squatter, "-p", f"127.0.0.1:{docker_env.port}:5000", TEST_IMAGE)
    try:
        assert cli("up") == 1
        err = capsys.readouterr().err
        assert f"Port {docker_env.port} on 127.0.0.1 is already in use" in err
        assert "--port" in err
        assert docker_env.inspect() is None and not docker_env.volume_exists()
    finally:
        docker("container", "rm", "-f", "-v", squatter, check=False)


def test_python_dash_m_entry_point(docker_env: DockerEnv) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pallet_dev", "up", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert '"backend": "docker"' in result.stdout


def _json_chunks(text: str) -> list[str]:
    chunks, depth, current = [], 0, []
    for line in text.splitlines():
        current.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0 and current and line.strip() == "}":
            chunks.append("\n".join(current))
            current = []
    return chunks


def _tcp_listeners(port: int) -> list[str]:
    """Local addresses of sockets listening on ``port`` (from /proc/net/tcp)."""
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            host_hex, port_hex = local.rsplit(":", 1)
            if state != "0A" or int(port_hex, 16) != port:
                continue
            if len(host_hex) == 8:
                octets = bytes.fromhex(host_hex)[::-1]
                addresses.append(".".join(str(b) for b in octets))
            else:
                addresses.append("::" if set(host_hex) == {"0"} else host_hex)
    return addresses
