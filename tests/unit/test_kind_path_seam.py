"""The kind backend through the real Runner and CLI, with fake tools on PATH.

tests/fakes/bin/{kind,helm,kubectl,docker} are real executables: every call is a
real subprocess with real argv, stdin and exit codes, recorded in a log. A watcher
thread plays the NodePort behind kind's port mapping (and a container's published
port): on every port the fake world serves, a registry-like HTTP server answers.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.cli import run
from pallet_dev.runner import Runner
from tests.fakes.fake_tool import new_state, served_ports
from tests.fakes.runner import RegistryServers, command_words
from tests.support.http_servers import free_port
from tests.unit.test_kind_backend import from_nothing, reused_unchanged

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "bin"


class FakeWorld:
    def __init__(self, state_file: Path, log_file: Path) -> None:
        self.state_file = state_file
        self.log_file = log_file
        self.registries = RegistryServers()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def log(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [command_words(entry["argv"]) for entry in self.log()]

    def clear_log(self) -> None:
        self.log_file.unlink(missing_ok=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            try:
                state = self.state()
            except ValueError:  # caught mid-write
                continue
            self.registries.sync(served_ports(state))

    def start(self) -> FakeWorld:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.registries.close()


def same_steps(commands: list[str], expected: list[str]) -> bool:
    """Equal up to the order of the concurrent steps (after the node wait, before the deploy
    or the rollout wait)."""
    start = expected.index("kubectl get nodes") + 1
    end = next(i for i, c in enumerate(expected) if c in ("helm upgrade", "kubectl rollout status"))
    return (
        commands[:start] == expected[:start]
        and sorted(commands[start:end]) == sorted(expected[start:end])
        and commands[end:] == expected[end:]
    )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorld]:
    for tool in FAKES.iterdir():  # in case a checkout lost the executable bits
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    state_file = tmp_path / "fake-state.json"
    state = new_state()
    state["user_kubeconfig"]["contexts"]["prod"] = {"cluster": "prod", "user": "me"}
    state["user_kubeconfig"]["current-context"] = "prod"
    state_file.write_text(json.dumps(state))
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("FAKE_TOOLS_STATE", str(state_file))
    monkeypatch.setenv("FAKE_TOOLS_LOG", str(tmp_path / "fake-log.jsonl"))
    monkeypatch.setenv("FAKE_TOOLS_PYTHON", sys.executable)
    fake = FakeWorld(state_file, tmp_path / "fake-log.jsonl").start()
    yield fake
    fake.stop()


def test_unknown_argv_fails_loudly(world: FakeWorld) -> None:
    runner = Runner()
    result = runner.run(["kind", "get", "everything"], check=False)
    assert result.returncode == 97 and "unexpected argv" in result.stderr
    assert world.log()[-1]["unexpected"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    # the registry's path only; the pull-through caches' steps: test_kind_mirrors.py
    (tmp_path / "pallet-dev.yaml").write_text("mirrors: []\n")
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PALLET_DEV_NAME", "pdt-cli")
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    for var in ("PALLET_DEV_BACKEND", "PALLET_DEV_KIND_NODE_IMAGE", "PALLET_DEV_CHART_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_cli_dry_run_json_shows_kind_config_and_runs_nothing(
    world: FakeWorld, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(["up", "--backend", "kind", "--dry-run", "--json"], capsys)
    assert code == 0
    plan = json.loads(out)
    assert plan["backend"] == "kind"
    node = plan["kind_config"]["nodes"][0]
    assert node["extraPortMappings"][0]["listenAddress"] == "127.0.0.1"
    assert world.log() == []  # not one subprocess
    assert not (cli_env / "home" / "data").exists()


def test_cli_auto_picks_kind_up_rerun_down(
    world: FakeWorld, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(["up", "--json", "--timeout", "60"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["backend"] == "kind" and summary["changed"]
    assert " ✓ Creating kind cluster 'pdt-cli'" in err
    # `up` with backend auto first checks the daemon (select.py), then the backend runs;
    # the independent steps after "kubectl get nodes" run at once, in any order
    expected = ["docker version", *from_nothing("pdt-cli-control-plane")]
    assert same_steps(world.commands(), expected)
    assert not [entry for entry in world.log() if "unexpected" in entry]

    world.clear_log()
    code, out, err = _cli(["up", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["changed"] is False
    expected = ["docker version", *reused_unchanged("pdt-cli-control-plane")]
    assert same_steps(world.commands(), expected)
    state = world.state()
    assert state["releases"]["pallet/registry"]["version"] == 1
    assert state["user_kubeconfig"]["current-context"] == "prod"
    assert state["user_kubeconfig"]["contexts"]["kind-pdt-cli"]

    code, out, err = _cli(["down", "--json"], capsys)
    assert code == 0, err
    assert "kind cluster pdt-cli" in json.loads(out)["removed"]
    assert world.state()["clusters"] == {}
    assert (cli_env / "home" / "data" / "pdt-cli" / "registry").is_dir()
