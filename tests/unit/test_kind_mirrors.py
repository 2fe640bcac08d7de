"""The kind backend's pull-through caches against the fake tools (runner seam): the chart's
values, each node's hosts.toml per upstream, the folders, the Secret and CA ConfigMap, and
the record of what `up` verified."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.kind import KindBackend
from pallet_dev.backends.registry_wiring import mirror_hosts_toml
from pallet_dev.config import Config, RegistrySettings
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.settings import from_config
from tests.fakes.runner import FakeToolsRunner
from tests.support.http_servers import free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pallet-registry"
NAME = "pdt-kmir"
NODE = f"{NAME}-control-plane"
PEM = "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")


@pytest.fixture
def runner() -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner()
    yield fake
    fake.close()


def make(runner: FakeToolsRunner, paths: Paths, port: int, **fields: Any) -> KindBackend:
    config = from_config(Config(name=NAME, registry=RegistrySettings(port=port), **fields))
    backend = KindBackend(config, runner, paths, chart_dir=CHART)
    backend.poll_interval = 0.0
    backend.max_parallel = 1
    return backend


def up(backend: KindBackend) -> Any:
    return backend.up(UpOptions(timeout=20), Steps(io.StringIO()))


def deployed_values(runner: FakeToolsRunner) -> dict[str, Any]:
    upgrade = next(c for c in runner.calls if c[:2] == ["helm", "upgrade"] or "upgrade" in c)
    files = [upgrade[i + 1] for i, arg in enumerate(upgrade) if arg == "--values"]
    values: dict[str, Any] = {}
    for name in files:
        values.update(yaml.safe_load(Path(name).read_text()) or {})
    return values


def test_default_caches_are_deployed_and_wired_into_containerd(runner, paths) -> None:
    port = free_port()
    backend = make(runner, paths, port)
    result = up(backend)
    assert "wrote-mirror-hosts-toml" in result.actions
    files = runner.state["node_files"][NODE]
    hub = files["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert hub == mirror_hosts_toml("docker.io", "https://registry-1.docker.io", NODE, 30051)
    assert 'server = "https://registry-1.docker.io"' in hub
    assert f'[host."http://{NODE}:30051"]' in hub and '["pull", "resolve"]' in hub
    assert (
        f'[host."http://{NODE}:30054"]'
        in files["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]
    )
    caches = backend.chart_inputs(UpOptions()).values["mirrors"]["caches"]
    assert [(c["name"], c["nodePort"]) for c in caches] == [
        ("docker-io", 30051),
        ("ghcr-io", 30052),
        ("quay-io", 30053),
        ("registry-k8s-io", 30054),
    ]
    assert all(not c["credentialsSecret"] and not c["caConfigMap"] for c in caches)
    # each cache's folder in the kept data folder, writable by the pod's user
    folder = backend.data_dir / "_mirrors" / "quay-io"
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o777
    assert not runner.state.get("secrets")  # anonymous: no Secret


def test_unchanged_up_stays_a_no_op_and_a_changed_list_converges(runner, paths) -> None:
    port = free_port()
    up(make(runner, paths, port))
    runner.reset_calls()
    again = up(make(runner, paths, port))
    assert not again.changed and again.actions == []
    upstreams = [{"upstream": "docker.io", "remote_url": "https://registry-1.docker.io"}]
    changed = up(make(runner, paths, port, mirrors=upstreams))
    assert "deployed-release" in changed.actions
    assert runner.state["releases"]["pallet/registry"]["version"] == 2
    assert "/etc/containerd/certs.d/docker.io/hosts.toml" in runner.state["node_files"][NODE]


def test_credentials_and_ca_go_in_a_secret_and_configmap_on_stdin(
    runner, paths, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CORP_USER", "robot")
    monkeypatch.setenv("CORP_TOKEN", "t0ken-value")
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    mirror = {
        "upstream": "registry.corp:8443",
        "remote_url": "https://registry.corp:8443",
        "username_env": "CORP_USER",
        "password_env": "CORP_TOKEN",
        "ca_file": str(ca),
    }
    port = free_port()
    backend = make(runner, paths, port, mirrors=[mirror])
    plan = backend.plan_up(UpOptions(timeout=5)).to_dict()
    assert any("registry-mirror-credentials" in step["name"] for step in plan["steps"])
    assert "t0ken-value" not in json.dumps(plan)
    up(backend)
    secret = runner.state["secrets"]["pallet/registry-mirror-credentials"]
    assert secret["stringData"] == {
        "registry-corp-8443-username": "robot",
        "registry-corp-8443-password": "t0ken-value",
    }
    assert runner.state["configmaps"]["pallet/registry-mirror-cas"]["data"] == {
        "registry-corp-8443.crt": PEM
    }
    assert not any("t0ken" in arg or "robot" in arg for call in runner.calls for arg in call)
    [cache] = backend.chart_inputs(UpOptions()).values["mirrors"]["caches"]
    assert cache["credentialsSecret"] == "registry-mirror-credentials"
    assert cache["caConfigMap"] == "registry-mirror-cas"
    digest = backend.chart_inputs(UpOptions()).values["mirrors"]["inputsDigest"]
    assert digest and "t0ken" not in digest
    # a changed credential changes the digest (the Pod rolls) and the record's inputs
    monkeypatch.setenv("CORP_TOKEN", "another")
    other = make(runner, paths, port, mirrors=[mirror])
    assert other.chart_inputs(UpOptions()).values["mirrors"]["inputsDigest"] != digest
    assert other.record_inputs([], []) != backend.record_inputs([], [])


def test_status_reads_each_cache_from_its_folder(runner, paths) -> None:
    backend = make(runner, paths, free_port())
    up(backend)
    repo = backend.data_dir / "_mirrors" / "docker-io" / "docker/registry/v2/repositories"
    (repo / "library" / "alpine" / "_manifests").mkdir(parents=True)
    (repo / "library" / "alpine" / "_layers").mkdir()
    (repo / "library" / "alpine" / "_layers" / "data").write_bytes(b"x" * 100)
    rows = backend.status().mirrors
    assert rows is not None
    hub = rows[0]
    assert hub["upstream"] == "docker.io" and hub["entries"] == 1 and hub["size_bytes"] == 100
    assert hub["endpoint"] == f"http://{NODE}:30051" and hub["hits"] is None
    # the registry's own size leaves the caches out
    assert backend.registry_data_size() == 0
