"""The CLI end to end in-process: exit codes, stdout/stderr split, dry-run plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet_dev import __version__
from pallet_dev.cli import run as cli_run
from tests.conftest import clear_config_env
from tests.support.http_servers import free_port, registry_server, silent_server


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "home"))
    clear_config_env(monkeypatch)
    return tmp_path


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def run(*argv: str) -> int:
    return cli_run(list(argv))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--version") == 0
    assert capsys.readouterr().out.strip() == f"pallet-dev {__version__}"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--help") == 0
    out = capsys.readouterr().out
    for command in ("up", "down", "health", "status", "doctor"):
        assert f"  {command} " in out


def test_dry_run_json_is_one_document_and_runs_nothing(
    no_tools: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("up", "--prefer-docker", "--dry-run", "--json", "--port", "5123") == 0
    captured = capsys.readouterr()
    plan = json.loads(captured.out)
    assert plan["backend"] == "docker"
    assert all(set(step) >= {"name", "argv"} for step in plan["steps"])
    run_step = next(s for s in plan["steps"] if s["argv"][:2] == ["docker", "run"])
    assert "127.0.0.1:5123:5000" in run_step["argv"]


def test_auto_falls_back_to_docker_with_a_one_line_notice(
    no_tools: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # dry-run checks tools on PATH only; docker missing too, so auto cannot pick anything
    assert run("up", "--dry-run", "--json") == 3
    assert "'docker' was not found on PATH" in capsys.readouterr().err


def test_bad_config_exits_2_with_file_and_line(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (isolated / "pallet-dev.yaml").write_text("registry:\n  port: 99999\n")
    assert run("up", "--prefer-docker") == 2
    err = capsys.readouterr().err
    assert f"{isolated / 'pallet-dev.yaml'}:2: registry.port:" in err
    assert "Traceback" not in err


def test_non_integer_port_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("up", "--port", "abc") == 2
    assert "--port" in capsys.readouterr().err


def test_no_docker_cli_is_a_prerequisite_error(
    no_tools: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("up", "--prefer-docker") == 3
    err = capsys.readouterr().err
    assert "'docker' was not found on PATH" in err and "docs.docker.com" in err
    assert "log:" in err


def test_down_on_nothing_without_docker_succeeds(
    no_tools: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("down") == 0
    assert "Nothing to remove" in capsys.readouterr().out


def test_health_json_healthy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with registry_server() as url:
        monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", url.rsplit(":", 1)[1])
        assert run("health", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "healthy" and doc["schema_version"] == 1
    assert doc["services"][0]["name"] == "registry" and doc["services"][0]["status_code"] == 200


def test_health_registry_without_api_header_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with registry_server(headers={}) as url:
        monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", url.rsplit(":", 1)[1])
        assert run("health", "--json") == 1
    assert "missing header" in json.loads(capsys.readouterr().out)["services"][0]["error"]


def test_health_registry_with_auth_counts_as_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with registry_server(status=401, headers={"WWW-Authenticate": "Basic"}) as url:
        monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", url.rsplit(":", 1)[1])
        assert run("health", "--json") == 0
    assert json.loads(capsys.readouterr().out)["services"][0]["status_code"] == 401


def test_health_reports_each_failing_service(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()
    with silent_server() as silent, registry_server(status=500) as broken:
        (isolated / "pallet-dev.yaml").write_text(
            f"registry:\n  port: {closed}\nservices:\n"
            f"  - {{name: silent, url: '{silent}/healthz'}}\n"
            f"  - {{name: broken, url: '{broken}/healthz'}}\n"
        )
        assert run("health", "--json", "--timeout", "0.3") == 1
    doc = json.loads(capsys.readouterr().out)
    by_name = {service["name"]: service for service in doc["services"]}
    assert by_name["registry"]["error"] == "connection refused"
    assert by_name["silent"]["error"] == "timed out after 0.3 s"
    assert by_name["broken"]["error"] == "expected 200, got 500"
    assert doc["status"] == "unhealthy" and not any(s["healthy"] for s in doc["services"])


def test_health_table_without_colour_when_not_a_terminal(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (isolated / "pallet-dev.yaml").write_text(f"registry:\n  port: {free_port()}\n")
    assert run("health") == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["SERVICE", "STATE", "CODE", "MS", "URL"]
    assert "DOWN" in out and "\033[" not in out


def test_status_when_nothing_is_up_says_so(
    no_tools: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    assert run("status") == 0
    assert "Nothing is up" in capsys.readouterr().out
    assert run("status", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["up"] is False and doc["registry"]["healthy"] is False


def test_environment_lock_times_out_with_exit_code_4(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    from pallet_dev.context import AppContext
    from pallet_dev.errors import LockTimeout

    ctx = AppContext()
    lock_path = ctx.paths.lock_file("pdt-locked")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LockTimeout) as caught:
            with ctx.env_lock("pdt-locked", timeout=0.3):
                pass
    assert caught.value.exit_code == 4 and "still holds the lock" in caught.value.message
    assert "waiting up to 0.3 s" in capsys.readouterr().err
    with ctx.env_lock("pdt-locked", timeout=0.3):  # free again once the holder closed it
        pass


def test_an_injected_context_is_kept(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """run(argv, context): the root callback uses the caller's AppContext, not a new one."""
    from pallet_dev.cli import run as cli_run
    from pallet_dev.context import AppContext
    from pallet_dev.paths import Paths

    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    config = isolated / "injected.yaml"
    config.write_text("name: pdt-injected\n")
    injected = isolated / "injected-home"
    context = AppContext(
        config_file=config,
        command="health",
        paths=Paths(injected / "data", injected / "state", injected / "logs"),
    )
    assert cli_run(["health", "--json"], context=context) == 1  # nothing answers
    assert json.loads(capsys.readouterr().out)["status"] == "unhealthy"
    assert context.config_path == config  # this context read the config
    log = (injected / "logs" / "pallet-dev.log").read_text()
    assert '"health"' in log
    assert not (isolated / "home" / "logs" / "pallet-dev.log").exists()


def test_a_bug_exits_70_and_asks_for_a_report_without_a_traceback(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pallet_dev.commands import status
    from pallet_dev.errors import EXIT_INTERNAL

    def broken(*args: object, **kwargs: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    monkeypatch.delenv("PALLET_DEV_DEBUG", raising=False)
    monkeypatch.setattr(status, "run_status", broken)
    assert EXIT_INTERNAL == 70
    assert run("status") == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == "pallet-dev: internal error: ZeroDivisionError: division by zero."
    assert lines[1].startswith("  please report this bug in pallet-dev")
    assert "re-run with --debug for the traceback" in lines[1]
    # with --debug: the traceback, and no advice to re-run for it
    assert run("--debug", "status") == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and 'raise ZeroDivisionError("division by zero")' in err
    assert "re-run with --debug" not in err


def test_a_bug_after_the_log_opened_names_the_log_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pallet_dev.commands import health

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise KeyError("services")

    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    monkeypatch.setattr(health, "probe_all", broken)  # after the config was read and logged
    assert run("health") == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    log_file = isolated / "home" / "logs" / "pallet-dev.log"
    assert f"please report this bug in pallet-dev, with the log file {log_file};" in err
    crash = [json.loads(line) for line in log_file.read_text().splitlines()][-1]
    assert crash["event"] == "crash" and crash["error"] == "KeyError: 'services'"
    assert "Traceback (most recent call last)" in crash["traceback"]
    assert 'raise KeyError("services")' in crash["traceback"]


def test_the_cli_installs_no_signal_handler() -> None:
    """entry.main alone owns signals: an in-process run leaves SIGTERM's handler alone."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    assert run("--version") == 0
    assert signal.getsignal(signal.SIGTERM) is before
