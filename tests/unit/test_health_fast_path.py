"""`health`'s fast path: no Typer, pydantic or yaml while the config snapshot matches.

Real subprocesses of the entry point; the snapshot must never hide a config change
or a config error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.http_servers import free_port, registry_server
from tests.support.fast_path import heavy_modules_probe

API_HEADER = {"Docker-Distribution-Api-Version": "registry/2.0"}
# runs the console script's code and reports which heavy modules it imported
PROBE = heavy_modules_probe()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PALLET_DEV_")}
    environ.update(PALLET_DEV_HOME=str(tmp_path / "home"), PALLET_DEV_NAME="pdt-fast")
    return environ


def health(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return run_cli(tmp_path, env, "health", *args)


def test_second_run_skips_typer_pydantic_and_yaml(tmp_path: Path, env: dict[str, str]) -> None:
    with registry_server(200, API_HEADER) as url:
        env["PALLET_DEV_REGISTRY_PORT"] = url.rsplit(":", 1)[1]
        (tmp_path / "pallet-dev.yaml").write_text("backend: docker\n")
        code, first, err = health(tmp_path, env, "--json")
        assert code == 0 and "'pydantic'" in err.splitlines()[-1]
        code, second, err = health(tmp_path, env, "--json", "--timeout", "2")
        assert code == 0, err
        assert err.splitlines()[-1] == "[]"  # none of them imported
    assert [s["name"] for s in json.loads(second)["services"]] == ["registry"]
    assert json.loads(first)["backend"] == json.loads(second)["backend"] == "docker"


def test_a_changed_file_or_variable_is_seen_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    with registry_server(200, API_HEADER) as url, registry_server(204, {}) as agent:
        env["PALLET_DEV_REGISTRY_PORT"] = url.rsplit(":", 1)[1]
        config = tmp_path / "pallet-dev.yaml"
        config.write_text("services: []\n")
        assert health(tmp_path, env, "--json")[0] == 0
        config.write_text(
            f"services:\n  - name: agent\n    url: {agent}/\n    expect_status: 204\n"
        )
        code, out, _ = health(tmp_path, env, "--json")
        assert code == 0 and [s["name"] for s in json.loads(out)["services"]] == [
            "registry",
            "agent",
        ]
        env["PALLET_DEV_REGISTRY_PORT"] = str(free_port())
        code, out, _ = health(tmp_path, env, "--json")
        assert code == 1 and json.loads(out)["services"][0]["error"] == "connection refused"


def test_a_config_error_is_reported_even_after_a_snapshot(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env["PALLET_DEV_REGISTRY_PORT"] = str(free_port())
    config = tmp_path / "pallet-dev.yaml"
    config.write_text("name: pdt-fast\n")
    assert health(tmp_path, env, "--json")[0] == 1
    config.write_text("name: pdt-fast\nregistry:\n  prot: 1\n")
    code, _, err = health(tmp_path, env, "--json")
    assert code == 2 and "registry.prot: unknown key" in err


def test_other_options_take_the_full_cli(tmp_path: Path, env: dict[str, str]) -> None:
    env["PALLET_DEV_REGISTRY_PORT"] = str(free_port())
    health(tmp_path, env)  # writes the snapshot
    code, _, err = health(tmp_path, env, "--timeout", "-1")  # a value only the command judges
    assert code == 2 and "'pydantic'" in err.splitlines()[-1]
    code, _, err = health(tmp_path, env, "--timeout", "abc")  # a usage error fails fast
    assert code == 2 and err.splitlines()[-1] == "[]"
    assert err.startswith("pallet-dev: error: Invalid value for '--timeout': ")
    code, out, _ = health(tmp_path, env, "--help")
    assert code == 0 and "--timeout" in out


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    "config_args",
    [("--config", "conf/team.yaml"), ("-c", "conf/team.yaml"), ("--config=conf/team.yaml",)],
)
def test_global_config_option_before_health_takes_the_fast_path(
    tmp_path: Path, env: dict[str, str], config_args: tuple[str, ...]
) -> None:
    """The README's form, `pallet-dev --config FILE health --json`, is as fast as the bare one."""
    with registry_server(200, API_HEADER) as url, registry_server(204, {}) as agent:
        (tmp_path / "conf").mkdir()
        config = tmp_path / "conf" / "team.yaml"
        port = url.rsplit(":", 1)[1]
        config.write_text(f"backend: docker\nregistry:\n  port: {port}\n")
        code, _, err = run_cli(tmp_path, env, *config_args, "health", "--json")
        assert code == 0 and "'pydantic'" in err.splitlines()[-1], err
        code, out, err = run_cli(tmp_path, env, *config_args, "health", "--json")
        assert code == 0 and err.splitlines()[-1] == "[]", err
        assert json.loads(out)["services"][0]["url"].endswith(f":{port}/v2/")
        # the file named is the one read: a change to it is seen at once
        config.write_text(
            f"backend: docker\nregistry:\n  port: {port}\nservices:\n"
            f"  - name: agent\n    url: {agent}/\n    expect_status: 204\n"
        )
        code, out, _ = run_cli(tmp_path, env, *config_args, "health", "--json")
        assert code == 0 and [s["name"] for s in json.loads(out)["services"]] == [
            "registry",
            "agent",
        ]


def test_other_global_options_take_the_full_cli(tmp_path: Path, env: dict[str, str]) -> None:
    with registry_server(200, API_HEADER) as url:
        env["PALLET_DEV_REGISTRY_PORT"] = url.rsplit(":", 1)[1]
        assert run_cli(tmp_path, env, "health", "--json")[0] == 0  # a snapshot exists
        code, _, err = run_cli(tmp_path, env, "--verbose", "health", "--json")
        assert code == 0 and "'typer'" in err.splitlines()[-1]
        code, _, err = run_cli(tmp_path, env, "--config", "missing.yaml", "health", "--json")
        assert code == 2 and "missing.yaml" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["health", "--json"], (None, "health", True)),
        (["--config", "a.yaml", "up"], ("a.yaml", "up", True)),
        (["-c", "a.yaml", "--config=b.yaml", "health"], ("b.yaml", "health", True)),
        (["--config", "--json"], None),  # no command: the full CLI says so
        (["--config="], None),
        (["--debug", "health"], (None, "health", False)),  # not plain: the full CLI runs it
        ([], None),
    ],
)
def test_global_options_before_the_command(argv: list[str], expected: object) -> None:
    from pallet_dev.bypass import CommandLine, read_command_line

    line = read_command_line(argv)
    if expected is None:
        assert line is None
    else:
        assert isinstance(line, CommandLine)
        assert (line.config_file, line.command, line.plain) == expected


def test_httpx_loads_without_its_cli_and_still_works() -> None:
    """load_httpx skips httpx's own CLI module (click, rich, pygments): ~70 ms at start-up."""
    with registry_server(200, API_HEADER) as url:
        code = (
            "import sys\n"
            "from pallet_dev.probe import http_get, load_httpx\n"
            "httpx = load_httpx()\n"
            f"status, headers, _ = http_get({url + '/v2/'!r}, 2.0)\n"
            "print(status, headers.get('docker-distribution-api-version'),"
            " sorted(m for m in ('click', 'rich', 'pygments') if m in sys.modules))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "registry/2.0", "[]"]


# a bug planted in the fast path, before the console script runs
BROKEN_PROBES = (
    "import pallet_dev.commands.health as health\n"
    "def broken(*args, **kwargs):\n"
    "    raise RuntimeError('planted bug')\n"
    "health.probe_all = broken\n"
)
BROKEN_PARSER = (
    "import pallet_dev.bypass as bypass\n"
    "def broken(*args, **kwargs):\n"
    "    raise RuntimeError('planted bug')\n"
    "bypass.parse = broken\n"
)


@pytest.mark.parametrize(
    ("planted", "log_named"),
    [(BROKEN_PROBES, True), (BROKEN_PARSER, False)],
    ids=["in-the-command", "before-the-command"],
)
def test_a_bug_on_the_fast_path_exits_70_without_a_traceback(
    tmp_path: Path, env: dict[str, str], planted: str, log_named: bool
) -> None:
    env["PALLET_DEV_REGISTRY_PORT"] = str(free_port())
    assert health(tmp_path, env, "--json")[0] == 1  # the full path stores the snapshot

    def broken_health(*extra_env: tuple[str, str]) -> tuple[int, str]:
        result = subprocess.run(
            [sys.executable, "-c", planted + PROBE, "health", "--json"],
            cwd=tmp_path,
            env={**env, **dict(extra_env)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.returncode, result.stderr

    code, err = broken_health()
    assert code == 70, err
    assert err.splitlines()[-1] == "[]", err  # the fast path ran: no Typer, pydantic, yaml
    assert "Traceback" not in err
    assert "pallet-dev: internal error: RuntimeError: planted bug." in err
    assert "please report this bug in pallet-dev" in err
    assert "re-run with --debug for the traceback" in err
    log_file = tmp_path / "home" / "logs" / "pallet-dev.log"
    assert (f"with the log file {log_file}" in err) is log_named
    code, err = broken_health(("PALLET_DEV_DEBUG", "1"))
    assert code == 70 and "Traceback" in err and "RuntimeError: planted bug" in err
