"""Docker backend orchestration against the fake docker CLI (runner seam)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.docker import DockerBackend
from pallet_dev.config import Config, RegistrySettings
from pallet_dev.settings import from_config
from pallet_dev.errors import (
    CommandFailed,
    DaemonUnavailable,
    OperationFailed,
    PortInUse,
    ReadinessTimeout,
)
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.tools.docker import LABEL_MANAGED, LABEL_SPEC
from tests.fakes.fake_docker import new_container
from tests.fakes.runner import FakeToolsRunner
from tests.support.http_servers import free_port, registry_server


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")


@pytest.fixture
def runner() -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner(tools=("docker",))
    yield fake
    fake.close()


def make(
    runner: FakeToolsRunner, paths: Paths, port: int | None = None, **registry: str
) -> DockerBackend:
    # the pull-through caches are tested in test_docker_mirrors.py; here only the registry
    config = Config(
        name="pdt-unit",
        registry=RegistrySettings(port=port or free_port(), **registry),
        mirrors=[],
    )
    return DockerBackend(from_config(config), runner, paths)


def quiet() -> Steps:
    return Steps(io.StringIO())


def commands(runner: FakeToolsRunner) -> list[str]:
    """The calls as "docker <sub> <sub2>" prefixes, for order assertions."""
    return [" ".join(call[:3]) for call in runner.calls]


def test_up_from_nothing_runs_the_documented_steps_in_order(runner, paths) -> None:
    backend = make(runner, paths)
    result = backend.up(UpOptions(timeout=10), quiet())
    assert result.changed and result.actions == ["created-container"]
    # optimistic create: the port is free, so one `docker run` does it all
    assert commands(runner) == ["docker run --detach"]
    run = runner.calls[-1]
    port = backend.config.registry.port
    assert run[run.index("--publish") + 1] == f"127.0.0.1:{port}:5000"
    assert run[run.index("--restart") + 1] == "unless-stopped"
    assert run[run.index("--mount") + 1] == (
        "type=volume,src=pdt-unit-registry-data,dst=/var/lib/registry,"
        "volume-label=dev.pallet.environment=pdt-unit,volume-label=dev.pallet.managed=true"
    )
    assert runner.state["volumes"]["pdt-unit-registry-data"] == {
        "dev.pallet.environment": "pdt-unit",
        "dev.pallet.managed": "true",
    }
    assert "OTEL_TRACES_EXPORTER=none" in run
    assert "REGISTRY_STORAGE_DELETE_ENABLED=true" in run
    assert run[-1] == "registry:3.1.2"


def test_dry_run_plan_matches_what_up_runs(runner, paths) -> None:
    backend = make(runner, paths)
    plan = backend.plan_up(UpOptions(timeout=5))
    assert runner.calls == []  # planning runs nothing
    backend.up(UpOptions(timeout=5), quiet())
    planned_run = next(step.argv for step in plan.steps if step.argv[:2] == ["docker", "run"])
    assert planned_run == runner.calls[-1]
    assert plan.to_dict()["backend"] == "docker"


def test_up_twice_is_a_no_op(runner, paths) -> None:
    backend = make(runner, paths)
    backend.up(UpOptions(timeout=10), quiet())
    runner.calls.clear()
    result = backend.up(UpOptions(timeout=10), quiet())
    assert not result.changed
    assert commands(runner) == ["docker container inspect"]


def test_stopped_container_is_started_not_recreated(runner, paths) -> None:
    backend = make(runner, paths)
    backend.up(UpOptions(timeout=10), quiet())
    container = runner.state["containers"]["pdt-unit-registry"]
    container["running"] = False
    assert backend.config.registry.port in runner.servers
    runner.sync_servers()  # a stopped container no longer answers
    runner.calls.clear()
    result = backend.up(UpOptions(timeout=10), quiet())
    assert result.actions == ["started-container"]
    # the optimistic run hits the name conflict, then the stopped container is started
    assert commands(runner) == [
        "docker run --detach",
        "docker container inspect",
        "docker container start",
    ]
    assert runner.state["containers"]["pdt-unit-registry"] is container


def test_changed_port_recreates_container_and_keeps_volume(runner, paths) -> None:
    backend = make(runner, paths)
    backend.up(UpOptions(timeout=10), quiet())
    moved = make(runner, paths, port=free_port())
    runner.calls.clear()
    result = moved.up(UpOptions(timeout=10), quiet())
    assert result.actions == ["removed-container", "created-container"]
    assert "docker volume rm" not in commands(runner)
    assert "pdt-unit-registry-data" in runner.state["volumes"]


def test_recreate_flag_replaces_a_healthy_container(runner, paths) -> None:
    backend = make(runner, paths)
    backend.up(UpOptions(timeout=10), quiet())
    result = backend.up(UpOptions(timeout=10, recreate=True), quiet())
    assert result.actions == ["removed-container", "created-container"]


def test_foreign_container_with_our_name_is_left_alone(runner, paths) -> None:
    runner.state["containers"]["pdt-unit-registry"] = new_container("nginx")
    backend = make(runner, paths)
    with pytest.raises(OperationFailed, match="not created by pallet-dev"):
        backend.up(UpOptions(timeout=5), quiet())
    with pytest.raises(OperationFailed, match="leaving it alone"):
        backend.down(clean=True, steps=quiet())
    assert "pdt-unit-registry" in runner.state["containers"]


def test_failed_docker_run_removes_the_half_created_container(runner, paths) -> None:
    runner.state["bind_fails"] = True
    backend = make(runner, paths)
    with pytest.raises(CommandFailed, match="port is already allocated"):
        backend.up(UpOptions(timeout=5), quiet())
    assert runner.state["containers"] == {}


def test_registry_that_never_answers_times_out_with_a_hint(runner, paths) -> None:
    runner.serve_registry = False
    backend = make(runner, paths)
    with pytest.raises(ReadinessTimeout) as caught:
        backend.up(UpOptions(timeout=0.5), quiet())
    assert "docker logs pdt-unit-registry" in str(caught.value)


def test_port_held_by_something_else_fails_before_creating_anything(runner, paths) -> None:
    with registry_server() as url:
        port = int(url.rsplit(":", 1)[1])
        backend = make(runner, paths, port=port)
        with pytest.raises(PortInUse) as caught:
            backend.up(UpOptions(timeout=5), quiet())
    assert f"Port {port}" in caught.value.message and "--port" in (caught.value.hint or "")
    assert runner.state["containers"] == {} and runner.state["volumes"] == {}


def test_missing_image_that_cannot_be_pulled_says_so(runner, paths) -> None:
    runner.state["host_images"].clear()
    backend = make(runner, paths)
    with pytest.raises(OperationFailed, match="Cannot pull registry:3.1.2"):
        backend.up(UpOptions(timeout=5), quiet())
    assert runner.state["containers"] == {}


def test_missing_image_is_pulled_once_then_run(runner, paths) -> None:
    runner.state["host_images"].clear()
    runner.state["pullable"].append("registry:3.1.2")
    result = make(runner, paths).up(UpOptions(timeout=10), quiet())
    assert result.actions == ["created-container"]
    assert [c for c in commands(runner) if c.startswith(("docker run", "docker pull"))] == [
        "docker run --detach",
        "docker pull registry:3.1.2",
        "docker run --detach",
    ]


def test_present_image_is_never_pulled(runner, paths) -> None:
    make(runner, paths).up(UpOptions(timeout=10), quiet())
    assert not any(call[1] == "pull" for call in runner.calls)


@pytest.mark.parametrize(
    ("daemon", "expected"), [("down", "not running"), ("denied", "Permission denied")]
)
def test_daemon_problems_are_prerequisite_errors(runner, paths, daemon, expected) -> None:
    runner.state["docker"] = daemon
    with pytest.raises(DaemonUnavailable, match=expected) as caught:
        make(runner, paths).up(UpOptions(timeout=5), quiet())
    assert caught.value.exit_code == 3


def test_down_keeps_volume_and_clean_removes_it(runner, paths) -> None:
    backend = make(runner, paths)
    backend.up(UpOptions(timeout=10), quiet())
    result = backend.down(clean=False, steps=quiet())
    assert result.removed == ["container pdt-unit-registry"]
    assert result.kept == ["volume pdt-unit-registry-data"]
    result = backend.down(clean=True, steps=quiet())
    assert result.removed == ["volume pdt-unit-registry-data"]
    assert runner.state["volumes"] == {}


def test_down_on_nothing_succeeds_and_removes_nothing(runner, paths) -> None:
    result = make(runner, paths).down(clean=True, steps=quiet())
    assert result.removed == [] and not result.changed


def test_status_reports_container_and_volume(runner, paths) -> None:
    backend = make(runner, paths)
    assert backend.status().report["exists"] is False
    backend.up(UpOptions(timeout=10), quiet())
    report = backend.status().report
    assert report["exists"] is True
    assert report["container"]["state"] == "running"
    assert report["container"]["managed"] is True
    assert report["volume"] == {
        "name": "pdt-unit-registry-data",
        "exists": True,
        "size_bytes": 1_500_000,
    }


def test_spec_hash_changes_with_image_port_and_bind(paths) -> None:
    runner = FakeToolsRunner(tools=("docker",))
    base = make(runner, paths, port=5001).container_spec().labels[LABEL_SPEC]
    assert make(runner, paths, port=5002).container_spec().labels[LABEL_SPEC] != base
    assert (
        make(runner, paths, port=5001, image="registry:next").container_spec().labels[LABEL_SPEC]
        != base
    )
    assert make(runner, paths, port=5001).container_spec().labels[LABEL_MANAGED] == "true"


def test_containers_on_the_network_pull_by_the_registry_containers_name(runner, paths) -> None:
    from pallet_dev.context import AppContext

    backend = make(runner, paths)
    assert backend.network_pull_host == "pdt-unit-registry:5000"
    ctx = AppContext(paths=paths)
    ctx.record_active("pdt-unit", backend.name, backend.endpoint, None, backend.network_pull_host)
    assert ctx.active("pdt-unit") == {
        "backend": "docker",
        "endpoint": backend.endpoint,
        "network_pull_host": "pdt-unit-registry:5000",
    }


def test_logs_of_an_agent_without_a_container_say_so_in_one_sentence(
    runner: FakeToolsRunner, paths: Paths
) -> None:
    backend = make(runner, paths)
    with pytest.raises(OperationFailed) as caught:
        backend.agent_logs_argv("planner", follow=False, tail=5)
    assert caught.value.message == (
        "Agent 'planner' is not running in environment 'pdt-unit': there is no container "
        "pdt-unit-agent-planner."
    )
    assert "pallet-dev up" in str(caught.value.hint)
    runner.state["containers"]["pdt-unit-agent-planner"] = new_container("img")
    argv = backend.agent_logs_argv("planner", follow=True, tail=5)
    assert argv[:3] == ["docker", "container", "logs"] and "pdt-unit-agent-planner" in argv
