"""Settings: the cached copy equals a fresh validation, and never hides a change."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet_dev.errors import ConfigError
from pallet_dev.paths import Paths
from pallet_dev.settings import Settings, load_settings

CONFIG = """\
name: env1
services:
  - {name: api, url: "http://localhost:8080/healthz", expect_status: 204}
chart: {values: [extra.yaml], set: ["a.b=1"]}
agents:
  - name: planner
    build: {context: agents/planner, args: {MODE: dev}}
    env: {LEVEL: debug}
    resources: {memory: 128Mi}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "agents" / "planner"
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pallet-dev.yaml").write_text(CONFIG)
    return tmp_path


def paths_in(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")


def test_the_cached_copy_equals_the_validated_settings(project: Path) -> None:
    paths = paths_in(project)
    fresh, cached = load_settings(None, paths, cwd=project, environ={})
    again, from_cache = load_settings(None, paths, cwd=project, environ={})
    assert (cached, from_cache) == (False, True)
    assert again == fresh and Settings.from_dict(fresh.to_dict()) == fresh
    assert fresh.config_file == project / "pallet-dev.yaml"
    assert fresh.agents[0].build is not None and fresh.agents[0].build.args == {"MODE": "dev"}
    assert (fresh.container_name, fresh.kube_context) == ("env1-registry", "kind-env1")


def test_variables_and_overrides_are_part_of_the_key(project: Path) -> None:
    paths = paths_in(project)
    load_settings(None, paths, cwd=project, environ={})
    port, cached = load_settings(
        None, paths, cwd=project, environ={"PALLET_DEV_REGISTRY_PORT": "5001"}
    )
    assert port.registry.port == 5001 and not cached
    flag, cached = load_settings(
        None, paths, cwd=project, environ={}, overrides={("registry", "port"): 5002}
    )
    assert flag.registry.port == 5002 and not cached
    assert load_settings(None, paths, cwd=project, environ={})[0].registry.port == 5000


def test_a_build_folder_removed_since_is_reported_as_on_first_load(project: Path) -> None:
    paths = paths_in(project)
    load_settings(None, paths, cwd=project, environ={})
    (project / "agents" / "planner" / "Dockerfile").unlink()
    with pytest.raises(ConfigError, match="has no Dockerfile"):
        load_settings(None, paths, cwd=project, environ={})


def test_one_run_loads_the_settings_once_per_set_of_overrides(project: Path) -> None:
    """The `up` fast path and `up` itself ask for the same settings: read once per run."""
    from pallet_dev.context import AppContext

    ctx = AppContext(config_file=project / "pallet-dev.yaml", paths=paths_in(project))
    first = ctx.load_settings()
    assert ctx.load_settings(overrides={("backend",): None, ("registry", "port"): None}) is first
    other = ctx.load_settings(overrides={("registry", "port"): 5003})
    assert other.registry.port == 5003 and first.registry.port == 5000
    assert ctx.load_settings(overrides={("registry", "port"): 5003}) is other
    loads = [line for line in ctx.paths.log_file().read_text().splitlines() if '"config"' in line]
    assert len(loads) == 2, loads
