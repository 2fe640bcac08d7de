"""`up` on kind with nothing changed: the last `up`'s record, and everything that voids it.

The record (backends/kind_record.py) lets `up` skip every call but one `docker inspect`
and one GET /v2/. These tests bring the environment up with the fake tools (runner seam),
then change one thing at a time and check that the next `up` is no longer a no-op.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from pallet_dev.backends.base import UpOptions, UpResult
from pallet_dev.backends.kind import KindBackend
from pallet_dev.chart.inputs import CHART_DIR_ENV
from pallet_dev.commands.down import run_down
from pallet_dev.commands.up import bring_up, unchanged_since_last_up
from pallet_dev.config import ChartSettings, Config, RegistrySettings
from pallet_dev.context import UP_RECORD, AppContext
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.settings import Settings, from_config
from tests.fakes.runner import FakeToolsRunner
from tests.support.fast_path import heavy_modules_probe
from tests.support.http_servers import free_port
from tests.unit.test_kind_backend import CHART
from tests.unit.test_kind_path_seam import FakeWorld, cli_env, world  # noqa: F401 - fixtures

NAME = "pdt-kind"


@pytest.fixture
def runner() -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner()
    yield fake
    fake.close()


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's kubeconfig file (what `kubectl config` would edit)."""
    path = tmp_path / "user-kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv(CHART_DIR_ENV, raising=False)
    return path


@pytest.fixture
def ctx(tmp_path: Path, runner: FakeToolsRunner, kubeconfig: Path) -> AppContext:
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    return AppContext(paths=paths, _runner=runner)


def settings(port: int, **config: Any) -> Settings:
    # the registry's path only; the pull-through caches' steps: test_kind_mirrors.py
    config = {"mirrors": [], **config}
    return from_config(Config(name=NAME, registry=RegistrySettings(port=port), **config))


def bring(ctx: AppContext, config: Settings, **options: Any) -> None:
    """A full `up` as the command runs it (it writes the record)."""
    backend = KindBackend(config, ctx.runner, ctx.paths, chart_dir=options.pop("chart", None))
    backend.poll_interval = 0.0
    backend.max_parallel = 1
    up_options = UpOptions(**{"timeout": 20.0, **options})
    assert bring_up(ctx, backend, up_options, Steps(io.StringIO()), as_json=True) == 0


def unchanged(ctx: AppContext, config: Settings, runner: FakeToolsRunner) -> bool:
    runner.reset_calls()
    return unchanged_since_last_up(ctx, config)


@pytest.fixture
def port() -> int:
    return free_port()


def test_nothing_changed_costs_one_docker_inspect(
    ctx: AppContext, runner: FakeToolsRunner, port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings(port)
    bring(ctx, config)
    capsys.readouterr()
    assert unchanged(ctx, config, runner)
    assert runner.commands() == [f"docker inspect {NAME}-control-plane"]
    assert runner.calls[0] == ["docker", "inspect", f"{NAME}-control-plane", "registry:3.1.2"]
    assert unchanged(ctx, config, runner)  # and again: nothing it did changed the record


def test_a_node_inspected_by_a_reusing_up_is_matched_by_id_and_start(
    ctx: AppContext, runner: FakeToolsRunner, port: int
) -> None:
    config = settings(port)
    bring(ctx, config)
    ctx.forget_up_record(NAME)
    bring(ctx, config)  # reuses the cluster: its node was inspected
    record = (ctx.active(NAME) or {})[UP_RECORD]
    cluster = runner.state["clusters"][NAME]
    assert record["node"] == {"id": cluster["id"], "started_at": cluster["started_at"]}
    assert unchanged(ctx, config, runner)


def _restart(runner: FakeToolsRunner) -> None:
    runner.run(["docker", "container", "start", f"{NAME}-control-plane"])


def _recreate(runner: FakeToolsRunner) -> None:
    cluster = runner.state["clusters"][NAME]
    cluster["id"] = "f" * 64
    cluster["started_at"] = "1999-01-01T00:00:00Z"


def _stop(runner: FakeToolsRunner) -> None:
    runner.state["clusters"][NAME]["running"] = False


def _rebuild_image(runner: FakeToolsRunner) -> None:
    runner.state["image_ids"] = {"registry:3.1.2": "sha256:beef"}


def _image_gone(runner: FakeToolsRunner) -> None:
    runner.state["host_images"] = []


def _registry_down(runner: FakeToolsRunner) -> None:
    runner.serve_registry = False
    runner.sync_servers()


def _docker_down(runner: FakeToolsRunner) -> None:
    runner.state["docker"] = "down"


@pytest.mark.parametrize(
    "change",
    [_restart, _recreate, _stop, _rebuild_image, _image_gone, _registry_down, _docker_down],
)
def test_what_docker_or_the_registry_says_voids_the_record(
    ctx: AppContext, runner: FakeToolsRunner, port: int, change: Callable[[FakeToolsRunner], None]
) -> None:
    config = settings(port)
    bring(ctx, config)
    bring(ctx, config)  # reusing the cluster: the node's identity is recorded exactly
    assert unchanged(ctx, config, runner)
    change(runner)
    assert not unchanged(ctx, config, runner)


def test_a_restart_after_a_creating_up_is_seen_by_its_start_time(
    ctx: AppContext, runner: FakeToolsRunner, port: int
) -> None:
    config = settings(port)
    bring(ctx, config)
    assert (ctx.active(NAME) or {})[UP_RECORD]["node"] is None  # kind made it: not inspected
    assert unchanged(ctx, config, runner)
    _restart(runner)
    assert not unchanged(ctx, config, runner)


@pytest.mark.parametrize(
    "other",
    [
        {"registry": {"image": "mirror.example/registry:3.1.2"}},
        {"kind": {"node_image": "kindest/node:v1.34.0@sha256:" + "b" * 64}},
        {"chart": ChartSettings(set=("registry.logLevel=debug",))},
    ],
)
def test_a_changed_setting_voids_the_record(
    ctx: AppContext, runner: FakeToolsRunner, port: int, other: dict[str, Any]
) -> None:
    bring(ctx, settings(port))
    fields = settings(port).to_dict()
    for key, value in other.items():
        fields[key] = (
            {**fields[key], **value}
            if isinstance(value, dict)
            else {"values": list(value.values), "set": list(value.set)}
        )
    assert not unchanged(ctx, Settings.from_dict(fields), runner)


def test_a_changed_values_file_voids_the_record(
    ctx: AppContext, runner: FakeToolsRunner, port: int, tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("registry:\n  logLevel: info\n")
    config = settings(port, chart=ChartSettings(values=(str(values),)))
    bring(ctx, config, values_files=(str(values),))
    assert unchanged(ctx, config, runner)
    values.write_text("registry:\n  logLevel: debug\n")
    assert not unchanged(ctx, config, runner)


def test_a_changed_chart_voids_the_record(
    ctx: AppContext,
    runner: FakeToolsRunner,
    port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    monkeypatch.setenv(CHART_DIR_ENV, str(chart))
    config = settings(port)
    bring(ctx, config, chart=chart)
    assert unchanged(ctx, config, runner)
    (chart / "templates" / "NOTES.txt").write_text("changed\n")
    assert not unchanged(ctx, config, runner)


def test_the_users_kubeconfig_changed_or_another_one_voids_the_record(
    ctx: AppContext,
    runner: FakeToolsRunner,
    port: int,
    kubeconfig: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = settings(port)
    bring(ctx, config)
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    assert not unchanged(ctx, config, runner)
    bring(ctx, config)
    assert unchanged(ctx, config, runner)
    other = tmp_path / "other-kubeconfig"
    other.write_text(kubeconfig.read_text())
    monkeypatch.setenv("KUBECONFIG", str(other))
    assert not unchanged(ctx, config, runner)


def test_the_private_kubeconfig_lost_voids_the_record(
    ctx: AppContext, runner: FakeToolsRunner, port: int
) -> None:
    config = settings(port)
    bring(ctx, config)
    ctx.paths.kind_kubeconfig(NAME).unlink()
    assert not unchanged(ctx, config, runner)
    assert runner.calls == []  # known without asking docker


def test_an_up_that_fails_half_way_leaves_no_record(
    ctx: AppContext, runner: FakeToolsRunner, port: int
) -> None:
    config = settings(port)
    bring(ctx, config)
    runner.state["fail"].append({"match": ["kind", "create"], "times": -1, "stderr": "boom"})
    with pytest.raises(Exception, match="boom"):
        bring(ctx, config, recreate=True)
    assert UP_RECORD not in (ctx.active(NAME) or {})
    assert not unchanged(ctx, config, runner)


def test_down_voids_the_record(
    ctx: AppContext, runner: FakeToolsRunner, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALLET_DEV_NAME", NAME)
    config = settings(port)
    bring(ctx, config)
    assert run_down(ctx, clean=False, as_json=True) == 0
    assert not unchanged(ctx, config, runner)


# --- through the console script, with the fake tools on PATH ------------------------------


def _pallet_dev(cwd: Path, *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-c", heavy_modules_probe(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def test_the_console_script_no_op_skips_typer_pydantic_yaml_and_all_but_one_call(
    world: FakeWorld, cli_env: Path  # noqa: F811 - fixtures
) -> None:
    code, out, err = _pallet_dev(cli_env, "up", "--json", "--timeout", "60")
    assert code == 0, err
    assert json.loads(out)["changed"] is True
    (cli_env / "conf").mkdir()
    (cli_env / "conf" / "pallet-dev.yaml").write_text("name: pdt-cli\n")
    for args in (("up", "--json"), ("--config", "conf/pallet-dev.yaml", "up", "--json")):
        _pallet_dev(cli_env, *args)  # the config snapshot for this form
        world.clear_log()
        code, out, err = _pallet_dev(cli_env, *args)
        assert code == 0, err
        assert json.loads(out) == {
            "backend": "kind",
            "endpoint": json.loads(out)["endpoint"],
            "changed": False,
            "actions": [],
        }
        assert world.commands() == ["docker inspect pdt-cli-control-plane"], args
        assert err.splitlines()[-1] == "[]", err  # no typer, pydantic or yaml
        assert " ✓ Cluster 'pdt-cli' unchanged since the last `up`" in err
    # anything the fast path does not parse (here a values file) runs the full `up`
    (cli_env / "values.yaml").write_text("registry:\n  logLevel: debug\n")
    world.clear_log()
    code, out, err = _pallet_dev(cli_env, "up", "--json", "-f", "values.yaml")
    assert code == 0, err
    assert json.loads(out)["actions"] == ["deployed-release"]
    assert "'pydantic'" in err.splitlines()[-1]
    # and the bare `up` then deploys the values without it again
    code, out, err = _pallet_dev(cli_env, "up", "--json")
    assert code == 0 and json.loads(out)["actions"] == ["deployed-release"], err


# --- the volume binding nudge while Helm waits ---------------------------------------------


def test_a_claim_left_waiting_for_its_volume_is_touched_once(
    tmp_path: Path, runner: FakeToolsRunner, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from pallet_dev.backends import kind_deploy
    from pallet_dev.backends.steps import Deadline

    monkeypatch.setattr(kind_deploy, "BIND_NUDGE_FIRST", 0.01)
    monkeypatch.setattr(kind_deploy, "BIND_NUDGE_EVERY", 0.01)
    backend = KindBackend(settings(port), runner, Paths(tmp_path, tmp_path, tmp_path))
    backend.poll_interval = 0.0
    backend.up(UpOptions(timeout=20), Steps(io.StringIO()))
    runner.state["pvc_phase"] = "Pending"  # the binder saw the claim before its volume
    run = backend._start(UpOptions(timeout=20), Steps(io.StringIO()), Deadline(20))
    deployed = threading.Event()
    nudge = threading.Thread(target=kind_deploy.nudge_binding, args=(run, deployed))
    runner.reset_calls()
    nudge.start()
    nudge.join(timeout=10)
    assert not nudge.is_alive()  # it stops once the claim is bound, before Helm is done
    assert runner.commands() == ["kubectl get pvc", "kubectl annotate", "kubectl get pvc"]
    assert runner.state["annotations"] == {"pvc/registry-pallet-registry": [runner.calls[1][-2]]}
    assert runner.calls[1][-2].startswith(f"{kind_deploy.BIND_NUDGE_ANNOTATION}=")


# --- the new node wired while kind starts Kubernetes ----------------------------------------

# kind's progress lines on stderr (no terminal), up to kubeadm's start
KIND_PROGRESS = [
    'Creating cluster "pdt-kind" ...\n',
    " ✓ Ensuring node image (kindest/node:v1.34.4) 🖼\n",
    " ✓ Preparing nodes 📦\n",
    " ✓ Writing configuration 📜\n",
    " • Starting control-plane 🕹️  ...\n",
]


class ProgressRunner(FakeToolsRunner):
    """Fake tools whose `kind create cluster` also reports its progress lines."""

    def run(self, argv: Any, **kwargs: Any) -> Any:
        result = super().run(argv, **kwargs)
        on_output = kwargs.get("on_output")
        if on_output is not None and list(argv[:3]) == ["kind", "create", "cluster"]:
            for line in KIND_PROGRESS:
                on_output(line)
        return result


def up_with_progress(runner: ProgressRunner, tmp_path: Path, config: Settings) -> UpResult:
    """`up` from nothing with kind's progress lines (the early work runs)."""
    try:
        backend = KindBackend(config, runner, Paths(tmp_path, tmp_path, tmp_path))
        backend.poll_interval = 0.0
        return backend.up(UpOptions(timeout=20), Steps(io.StringIO()))
    finally:
        runner.close()


@pytest.mark.parametrize("mirrors", [False, True], ids=["registry", "with-caches"])
def test_hosts_toml_and_the_image_go_in_while_kind_starts_kubernetes(
    tmp_path: Path, port: int, mirrors: bool
) -> None:
    from pallet_dev.backends.registry_wiring import (
        hosts_toml,
        hosts_toml_path,
        mirror_hosts_toml_path,
    )
    from pallet_dev.chart.constants import DEFAULT_NODE_PORT
    from pallet_dev.config_mirrors import default_mirrors

    config = settings(port, mirrors=default_mirrors() if mirrors else [])
    runner = ProgressRunner()
    result = up_with_progress(runner, tmp_path, config)
    node = f"{NAME}-control-plane"
    commands = runner.commands()
    create = commands.index("kind create cluster")
    # every hosts.toml in one `docker exec` and one copy, by the early work; the steps
    # then neither read nor write them again on the cluster created just now
    writes = [
        i for i, call in enumerate(runner.calls) if call[:5] == ["docker", "exec", node, "sh", "-c"]
    ]
    reads = [call for call in runner.calls if call[:4] == ["docker", "exec", node, "cat"]]
    assert len(writes) == 1 and reads == [] and commands.count("docker exec") == 0
    assert commands.count("kind load docker-image") == 1
    assert create < writes[0] < commands.index("kind load docker-image")
    assert commands.index("kind load docker-image") < commands.index("helm upgrade")
    files = runner.state["node_files"][node]
    assert files[hosts_toml_path(port)] == hosts_toml(port, node, DEFAULT_NODE_PORT)
    wanted = {mirror_hosts_toml_path(m.upstream) for m in config.mirrors}
    assert wanted <= set(files) and len(wanted) == (4 if mirrors else 0)
    assert {"wrote-hosts-toml", "loaded-image", "created-cluster"} <= set(result.actions)
    assert ("wrote-mirror-hosts-toml" in result.actions) is mirrors


def test_a_failed_early_write_is_done_by_the_steps(tmp_path: Path, port: int) -> None:
    from pallet_dev.backends.registry_wiring import hosts_toml, hosts_toml_path
    from pallet_dev.chart.constants import DEFAULT_NODE_PORT

    runner = ProgressRunner()
    # the early write of every hosts.toml fails once: the hosts.toml step reads and writes
    runner.state["fail"].append({"match": ["docker", "exec", "sh"], "times": 1, "stderr": "busy"})
    result = up_with_progress(runner, tmp_path, settings(port))
    node = f"{NAME}-control-plane"
    assert runner.state["node_files"][node][hosts_toml_path(port)] == hosts_toml(
        port, node, DEFAULT_NODE_PORT
    )
    # the step read it (missing) and wrote it (`docker exec -i`)
    reads = [call for call in runner.calls if call[:4] == ["docker", "exec", node, "cat"]]
    assert len(reads) == 1 and runner.commands().count("docker exec") == 1
    assert "wrote-hosts-toml" in result.actions


def test_a_failed_early_copy_is_done_by_the_image_step(tmp_path: Path, port: int) -> None:
    runner = ProgressRunner()
    runner.state["fail"].append({"match": ["kind", "load"], "times": 1, "stderr": "busy"})
    result = up_with_progress(runner, tmp_path, settings(port))
    assert runner.commands().count("kind load docker-image") == 2
    assert runner.state["clusters"][NAME]["images"] == ["registry:3.1.2"]
    assert result.actions.count("loaded-image") == 1
