"""`gc --mirrors` on the kind backend (kind_mirrors_gc.py) against the fake tools: the caches'
folders are real folders under the host data folder; kubectl scales their Deployment."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.kind import KindBackend
from pallet_dev.backends.kind_mirrors import cache_folder
from pallet_dev.chart.inputs import NAMESPACE, RELEASE
from pallet_dev.config import Config, RegistrySettings
from pallet_dev.errors import CommandFailed, OperationFailed
from pallet_dev.mirror_prune import V2
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.settings import from_config
from tests.fakes.runner import FakeToolsRunner
from tests.support.http_servers import free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pallet-registry"
NOW = datetime.now(timezone.utc)
DAY = timedelta(days=1)
DEPLOYMENT = "registry-pallet-registry-mirrors"
MIRRORS = [
    {"upstream": "docker.io", "remote_url": "https://registry-1.docker.io"},
    {"upstream": "ghcr.io", "remote_url": "https://ghcr.io"},
]


@pytest.fixture
def runner() -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner()
    yield fake
    fake.close()


@pytest.fixture
def backend(runner: FakeToolsRunner, tmp_path: Path) -> KindBackend:
    config = Config(name="pdt-kmgc", registry=RegistrySettings(port=free_port()), mirrors=MIRRORS)
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    made = KindBackend(from_config(config), runner, paths, chart_dir=CHART)
    made.poll_interval = 0.0
    made.max_parallel = 1
    made.up(UpOptions(timeout=20), Steps(io.StringIO()))
    runner.reset_calls()
    return made


def pulled(backend: KindBackend, upstream: int, repo: str, fetched: datetime) -> Path:
    """A repository the cache of ``MIRRORS[upstream]`` fetched at ``fetched`` (one layer)."""
    root = cache_folder(backend.data_dir, backend.config.mirrors[upstream])
    digest = "sha256:" + repo.encode().hex().ljust(64, "0")[:64]
    blob = root / V2 / "blobs" / "sha256" / digest[7:9] / digest[7:]
    blob.mkdir(parents=True, exist_ok=True)
    (blob / "data").write_bytes(b"x" * 5000)
    link = root / V2 / "repositories" / repo / "_layers" / "sha256" / digest[7:] / "link"
    link.parent.mkdir(parents=True)
    link.write_text(digest)
    (root / V2 / "repositories" / repo / "_manifests").mkdir()
    os.utime(link, (fetched.timestamp(), fetched.timestamp()))
    return root / V2 / "repositories" / repo


def mirror_replicas(runner: FakeToolsRunner) -> int:
    return int(runner.state["releases"][f"{NAMESPACE}/{RELEASE}"].get("_mirror_replicas", 1))


def test_the_plan_names_the_deployment_and_runs_nothing(runner, backend) -> None:
    pulled(backend, 0, "team/old", NOW - 3 * DAY)
    pulled(backend, 1, "team/new", NOW)
    hub, ghcr = backend.plan_clean_mirrors(older_than=DAY, now=NOW)
    assert runner.calls == []
    assert hub.plan.removed == {"team/old"} and ghcr.plan.empty and not ghcr.steps
    assert hub.storage == f"folder {cache_folder(backend.data_dir, backend.config.mirrors[0])}"
    scale = hub.steps[0].argv
    assert scale[scale.index("scale") :][:3] == ["scale", "--namespace", NAMESPACE]
    assert scale[-2:] == [f"deployment/{DEPLOYMENT}", "--replicas=0"]
    assert hub.steps[-1].argv[-1] == "--replicas=1"
    assert hub.bytes_before is not None and hub.plan.bytes == 5000


def test_nothing_to_delete_touches_no_cluster(runner, backend) -> None:
    pulled(backend, 0, "team/new", NOW)
    reports = backend.plan_clean_mirrors(older_than=DAY, now=NOW)
    assert all(not report.steps for report in reports)
    cleaned = backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=30)
    assert runner.calls == [] and all(report.method == "" for report in cleaned)
    assert mirror_replicas(runner) == 1


def test_the_caches_are_pruned_while_their_deployment_is_at_zero(runner, backend) -> None:
    old = pulled(backend, 0, "team/old", NOW - 3 * DAY)
    new = pulled(backend, 0, "team/new", NOW)
    ghcr_old = pulled(backend, 1, "org/tool", NOW - 2 * DAY)
    stream = io.StringIO()
    hub, ghcr = backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(stream), timeout=30)
    assert runner.commands() == [
        "kind get clusters",
        "kubectl get deployments",
        "kubectl scale",
        "kubectl wait",
        "kubectl scale",
        "kubectl rollout status",
    ]
    assert runner.calls[2][-2:] == [f"deployment/{DEPLOYMENT}", "--replicas=0"]
    assert runner.calls[4][-1] == "--replicas=1" and mirror_replicas(runner) == 1
    assert not old.exists() and not ghcr_old.exists() and new.is_dir()
    assert hub.plan.removed == {"team/old"} and ghcr.plan.removed == {"org/tool"}
    assert hub.bytes_removed is not None and hub.bytes_removed >= 5000
    assert hub.bytes_freed == hub.bytes_before - hub.bytes_after >= 5000  # type: ignore[operator]
    assert f"{NAMESPACE}/{DEPLOYMENT}" in hub.method and "scaled to 0" in hub.method
    text = stream.getvalue()
    assert text.index("Scaling the caches' Deployment") < text.index("Deleting 1 repository")
    assert " ✓ Scaling the caches' Deployment back to 1" in text


def test_without_older_than_every_cache_is_emptied(runner, backend) -> None:
    pulled(backend, 0, "team/new", NOW)
    pulled(backend, 1, "org/tool", NOW)
    reports = backend.clean_mirrors(
        older_than=None, now=NOW, steps=Steps(io.StringIO()), timeout=30
    )
    for mirror, report in zip(backend.config.mirrors, reports):
        folder = cache_folder(backend.data_dir, mirror)
        assert folder.is_dir() and list(folder.iterdir()) == []  # the Pod's mount stays
        assert report.bytes_after == 0 and report.method


def test_the_deployment_scales_back_even_when_the_wait_fails(runner, backend) -> None:
    old = pulled(backend, 0, "team/old", NOW - 3 * DAY)
    runner.state["fail"].append({"match": ["kubectl", "wait"], "stderr": "error: etcd is slow"})
    with pytest.raises(CommandFailed, match="etcd is slow"):
        backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=30)
    assert runner.commands()[-2:] == ["kubectl scale", "kubectl rollout status"]
    assert mirror_replicas(runner) == 1 and old.is_dir()  # nothing deleted while it might serve


def test_a_deployment_at_zero_stays_at_zero(runner, backend) -> None:
    pulled(backend, 0, "team/old", NOW - 3 * DAY)
    runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["_mirror_replicas"] = 0
    backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=30)
    assert runner.commands().count("kubectl scale") == 1 and mirror_replicas(runner) == 0


def test_no_cluster_or_no_deployment_is_an_error_that_says_what_to_run(runner, backend) -> None:
    pulled(backend, 0, "team/old", NOW - 3 * DAY)
    runner.state["releases"].clear()
    with pytest.raises(OperationFailed, match=f"{DEPLOYMENT} does not exist") as caught:
        backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=30)
    assert caught.value.hint and "pallet-dev up" in caught.value.hint
    runner.state["clusters"].clear()
    with pytest.raises(OperationFailed, match="does not exist, so no registry runs"):
        backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=30)


def test_caches_outside_the_host_data_folder_are_refused(runner, backend) -> None:
    pulled(backend, 0, "team/old", NOW - 3 * DAY)
    deployed = json.loads(backend.values_path.read_text())
    deployed["persistence"]["hostPath"]["enabled"] = False
    backend.values_path.write_text(json.dumps(deployed))
    with pytest.raises(OperationFailed, match="^The caches' storage is not in the host data"):
        backend.plan_clean_mirrors(older_than=DAY, now=NOW)
