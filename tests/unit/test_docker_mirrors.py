"""The Docker backend's pull-through caches against the fake docker CLI (runner seam)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.docker import DockerBackend
from pallet_dev.config import Config, MirrorSettings, RegistrySettings
from pallet_dev.errors import ConfigError
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.settings import from_config
from tests.fakes.runner import FakeToolsRunner
from tests.support.http_servers import free_port


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")


@pytest.fixture
def runner() -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner(tools=("docker",))
    yield fake
    fake.close()


def make(runner: FakeToolsRunner, paths: Paths, **fields: Any) -> DockerBackend:
    config = Config(name="pdt-unit", registry=RegistrySettings(port=free_port()), **fields)
    return DockerBackend(from_config(config), runner, paths)


def up(backend: DockerBackend) -> tuple[list[str], str]:
    out = io.StringIO()
    result = backend.up(UpOptions(timeout=10), Steps(out))
    return result.actions, out.getvalue()


def runs(runner: FakeToolsRunner) -> dict[str, list[str]]:
    """`docker run` argv by container name."""
    return {
        call[call.index("--name") + 1]: call
        for call in runner.calls
        if call[:2] == ["docker", "run"]
    }


def test_default_config_runs_one_cache_per_upstream_on_the_network(runner, paths) -> None:
    backend = make(runner, paths)
    actions, text = up(backend)
    assert actions == ["created-container", "started-mirrors"]
    started = runs(runner)
    names = {f"pdt-unit-mirror-{slug}" for slug in ("docker-io", "ghcr-io", "quay-io")}
    assert set(started) == {"pdt-unit-registry", "pdt-unit-mirror-registry-k8s-io", *names}
    hub = started["pdt-unit-mirror-docker-io"]
    assert "REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io" in hub
    # starts offline: credentials come from a helper, asked only when pulling
    assert "REGISTRY_PROXY_EXEC_COMMAND=/pallet-dev/no-credentials" in hub
    assert hub[hub.index("--network") + 1] == "pdt-unit"
    assert hub[hub.index("--publish") + 1] == "127.0.0.1::5000"
    assert "dev.pallet.mirror=docker.io" in hub
    assert hub[hub.index("--mount") + 1].startswith(
        "type=volume,src=pdt-unit-mirror-docker-io-data,dst=/var/lib/registry,"
    )
    assert runner.state["networks"]["pdt-unit"]["dev.pallet.environment"] == "pdt-unit"
    ports = json.loads((paths.state_dir / "pdt-unit.mirrors.json").read_text())
    assert set(ports) == {"docker.io", "ghcr.io", "quay.io", "registry.k8s.io"}
    # the daemon does not use the docker.io cache: the exact daemon.json line, once
    line = f'{{"registry-mirrors": ["http://127.0.0.1:{ports["docker.io"]}"]}}'
    assert text.count("daemon.json") == 1 and line in text


def test_unchanged_up_inspects_registry_and_caches_in_one_call(runner, paths) -> None:
    backend = make(runner, paths)
    up(backend)
    runner.reset_calls()
    actions, text = up(backend)
    assert actions == []
    assert runner.commands() == ["docker container inspect"]
    assert len(runner.calls[0]) == 3 + 1 + 4  # docker container inspect, registry, 4 caches
    assert "daemon.json" not in text


def test_daemon_already_using_the_cache_says_nothing(runner, paths) -> None:
    backend = make(runner, paths, mirrors=[{"upstream": "docker.io", "remote_url": "https://r.io"}])
    (paths.state_dir).mkdir(parents=True)
    port = free_port()
    (paths.state_dir / "pdt-unit.mirrors.json").write_text(json.dumps({"docker.io": port}))
    runner.state["registry_mirrors"] = [f"http://127.0.0.1:{port}/"]
    _, text = up(backend)
    hub = runs(runner)["pdt-unit-mirror-docker-io"]
    assert hub[hub.index("--publish") + 1] == f"127.0.0.1:{port}:5000"  # the recorded port
    assert "daemon.json" not in text


def test_credentials_pass_by_name_never_in_argv(runner, paths, monkeypatch) -> None:
    monkeypatch.setenv("HUB_USER", "alice")
    monkeypatch.setenv("HUB_TOKEN", "s3cret-token")
    mirror = {"upstream": "docker.io", "remote_url": "https://registry-1.docker.io"}
    backend = make(
        runner, paths, mirrors=[{**mirror, "username_env": "HUB_USER", "password_env": "HUB_TOKEN"}]
    )
    up(backend)
    hub = runs(runner)["pdt-unit-mirror-docker-io"]
    assert not any("s3cret" in arg or "alice" in arg for call in runner.calls for arg in call)
    assert hub[hub.index("REGISTRY_PROXY_USERNAME") - 1] == "--env"
    assert "REGISTRY_PROXY_PASSWORD" in hub
    assert not any(arg.startswith("REGISTRY_PROXY_EXEC_COMMAND") for arg in hub)
    env = runner.envs[runner.calls.index(hub)]
    assert env == {"REGISTRY_PROXY_USERNAME": "alice", "REGISTRY_PROXY_PASSWORD": "s3cret-token"}


def test_missing_credential_variable_is_a_config_error_before_any_change(
    runner, paths, monkeypatch
) -> None:
    monkeypatch.delenv("HUB_TOKEN", raising=False)
    monkeypatch.setenv("HUB_USER", "alice")
    mirror = {"upstream": "docker.io", "remote_url": "https://registry-1.docker.io"}
    backend = make(
        runner, paths, mirrors=[{**mirror, "username_env": "HUB_USER", "password_env": "HUB_TOKEN"}]
    )
    with pytest.raises(ConfigError, match="HUB_TOKEN, which is not set"):
        up(backend)
    assert "pdt-unit-mirror-docker-io" not in runner.state["containers"]


def test_ca_file_is_mounted_and_trusted(runner, paths, tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")
    mirror = MirrorSettings(upstream="up.test:5000", remote_url="https://up.test:5000")
    backend = make(runner, paths, mirrors=[mirror.model_copy(update={"ca_file": str(ca)})])
    plan = backend.plan_up(UpOptions(timeout=5))
    up(backend)
    cache = runs(runner)["pdt-unit-mirror-up-test-5000"]
    mount = f"type=bind,src={ca},dst=/etc/pallet-dev/upstream-ca/ca.crt,readonly"
    assert mount in cache
    assert "SSL_CERT_FILE=/etc/pallet-dev/upstream-ca/ca.crt" in cache
    assert any(step.argv == cache for step in plan.steps)  # --dry-run lists the same command
    # a changed CA replaces the container (the spec hash covers the file's content)
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIJ\n-----END CERTIFICATE-----\n")
    runner.reset_calls()
    actions, _ = up(backend)
    assert "started-mirrors" in actions
    assert "pdt-unit-mirror-up-test-5000" in runs(runner)


def test_mirrors_off_removes_the_caches_and_keeps_their_volumes(runner, paths) -> None:
    make(runner, paths).up(UpOptions(timeout=10), Steps(io.StringIO()))
    backend = make(runner, paths, mirrors=[])
    actions, _ = up(backend)
    assert actions.count("removed-mirror") == 4
    assert not [name for name in runner.state["containers"] if "-mirror-" in name]
    assert "pdt-unit-mirror-quay-io-data" in runner.state["volumes"]
    result = backend.down(clean=False, steps=Steps(io.StringIO()))
    assert "volume pdt-unit-mirror-quay-io-data" in result.kept
    result = backend.down(clean=True, steps=Steps(io.StringIO()))
    assert "volume pdt-unit-mirror-quay-io-data" in result.removed
    assert not runner.state["volumes"]


def test_down_removes_cache_containers_and_keeps_their_data(runner, paths) -> None:
    backend = make(runner, paths)
    up(backend)
    result = backend.down(clean=False, steps=Steps(io.StringIO()))
    assert "container pdt-unit-mirror-ghcr-io" in result.removed
    assert result.kept[0] == "volume pdt-unit-registry-data"
    assert "volume pdt-unit-mirror-ghcr-io-data" in result.kept
    assert not runner.state["containers"]
    assert (paths.state_dir / "pdt-unit.mirrors.json").is_file()  # ports kept for the next up


def test_status_lists_each_cache(runner, paths) -> None:
    backend = make(runner, paths)
    up(backend)
    rows = backend.status().mirrors
    assert rows is not None and [row["upstream"] for row in rows] == [
        "docker.io",
        "ghcr.io",
        "quay.io",
        "registry.k8s.io",
    ]
    assert all(row["hits"] is None and row["misses"] is None for row in rows)
    assert all(row["state"] == "running" and row["size_bytes"] == 1500000 for row in rows)


def test_recreate_replaces_the_caches_and_keeps_their_volumes(runner, paths) -> None:
    backend = make(runner, paths)
    up(backend)
    runner.reset_calls()
    backend.up(UpOptions(timeout=10, recreate=True), Steps(io.StringIO()))
    removed = [
        c[-1]
        for c in runner.calls
        if c[:5] == ["docker", "container", "rm", "--force", "--volumes"]
    ]
    assert "pdt-unit-mirror-docker-io" in removed
    assert "pdt-unit-mirror-docker-io" in runs(runner)
    assert "pdt-unit-mirror-docker-io-data" in runner.state["volumes"]
