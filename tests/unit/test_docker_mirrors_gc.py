"""`gc --mirrors` on the Docker backend (docker_mirrors_gc.py) against the fake docker CLI:
the cache's volume is a real folder that `docker container cp` copies, so the tests see
which commands ran, in which order, and what the volume holds afterwards."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.docker import DockerBackend
from pallet_dev.config import Config, RegistrySettings
from pallet_dev.errors import CommandFailed, OperationFailed
from pallet_dev.mirror_prune import SCHEDULER_STATE, V2, blob_folder
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.settings import from_config
from tests.fakes.runner import FakeToolsRunner
from tests.support.http_servers import free_port

NOW = datetime.now(timezone.utc)
NAME = "pdt-dmgc"
CACHE = f"{NAME}-mirror-docker-io"
VOLUME = f"{CACHE}-data"
DAY = timedelta(days=1)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner(tools=("docker",))
    fake.state["volume_root"] = str(tmp_path / "volumes")
    yield fake
    fake.close()


@pytest.fixture
def backend(runner: FakeToolsRunner, tmp_path: Path) -> DockerBackend:
    mirror = {"upstream": "docker.io", "remote_url": "https://registry-1.docker.io"}
    config = Config(name=NAME, registry=RegistrySettings(port=free_port()), mirrors=[mirror])
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    made = DockerBackend(from_config(config), runner, paths)
    made.up(UpOptions(timeout=10), Steps(io.StringIO()))
    runner.reset_calls()
    return made


def storage(runner: FakeToolsRunner) -> Path:
    return Path(runner.state["volume_root"]) / VOLUME


def pulled(runner: FakeToolsRunner, repo: str, layer: bytes, fetched: datetime) -> str:
    """What the cache writes when it fetches ``repo`` (one layer) from its upstream."""
    root = storage(runner)
    digest = f"sha256:{layer.hex().ljust(64, '0')[:64]}"
    blob = blob_folder(root, digest)
    blob.mkdir(parents=True, exist_ok=True)
    (blob / "data").write_bytes(layer)
    link = root / V2 / "repositories" / repo / "_layers" / "sha256" / digest[7:] / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(digest)
    (root / V2 / "repositories" / repo / "_manifests").mkdir(exist_ok=True)
    os.utime(link, (fetched.timestamp(), fetched.timestamp()))
    (root / SCHEDULER_STATE).write_text(f'{{"{repo}@{digest}": {{"EntryType": 0}}}}')
    return digest


def verbs(runner: FakeToolsRunner) -> list[str]:
    return [" ".join(call[1:3]) for call in runner.calls]


def test_the_plan_lists_the_commands_and_changes_nothing(runner, backend) -> None:
    pulled(runner, "team/old", b"o" * 3000, NOW - 3 * DAY)
    pulled(runner, "team/new", b"n" * 1000, NOW)
    [report] = backend.plan_clean_mirrors(older_than=DAY, now=NOW)
    assert report.upstream == "docker.io" and report.storage == f"volume {VOLUME}"
    assert report.plan.removed == {"team/old"}
    assert report.plan.bytes is None  # only the links were copied out: sizes unknown
    names = [step.name for step in report.steps]
    assert names[0].startswith("Stop the cache container")
    assert report.steps[0].argv == ["docker", "container", "stop", "--time", "10", CACHE]
    assert report.steps[1].argv == ["docker", "container", "cp", f"{CACHE}:/var/lib/registry/.",
                                    "<folder>"]  # fmt: skip
    assert report.steps[4].argv[:2] == ["docker", "run"]
    assert "container stop" not in verbs(runner)
    assert (storage(runner) / V2 / "repositories" / "team" / "old").is_dir()
    assert report.to_dict()["steps"][0]["argv"][-1] == CACHE
    # without --older-than: remove, remove the volume, start again
    [everything] = backend.plan_clean_mirrors(older_than=None, now=NOW)
    assert [step.argv[:3] for step in everything.steps] == [
        ["docker", "container", "rm"],
        ["docker", "volume", "rm"],
        ["docker", "run", "--detach"],
    ]


def test_older_than_prunes_a_copy_and_starts_the_cache_on_it(runner, backend) -> None:
    old = pulled(runner, "team/old", b"o" * 3000, NOW - 3 * DAY)
    new = pulled(runner, "team/new", b"n" * 1000, NOW)
    stream = io.StringIO()
    [report] = backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(stream), timeout=30)
    assert report.plan.removed == {"team/old"} and set(report.plan.blobs) == {old}
    order = verbs(runner)
    stop = order.index("container stop")
    assert order[stop:].count("container cp") == 2  # the storage out, the pruned copy in
    assert order.index("volume rm") > order.index("container cp", stop)
    copied_in = len(order) - 1 - order[::-1].index("container cp")
    assert order[copied_in + 1] == "container start"  # started once its storage is back
    assert order[-1] == "system df"  # the volume measured after
    assert runner.state["containers"][CACHE]["running"]
    root = storage(runner)
    assert not (root / V2 / "repositories" / "team" / "old").exists()
    assert not blob_folder(root, old).exists()
    assert (blob_folder(root, new) / "data").read_bytes() == b"n" * 1000
    assert "stopped while pallet-dev pruned a copy" in report.method
    assert report.bytes_removed is not None and report.bytes_removed >= 3000
    assert report.bytes_before is not None and report.bytes_after is not None
    assert report.bytes_freed == report.bytes_before - report.bytes_after >= 3000
    assert f" ✓ Stopping the cache container {CACHE}" in stream.getvalue()
    # the mirror's host port is the one it had: pulls keep going to the same endpoint
    assert report.to_dict()["bytes_freed"] == report.bytes_freed


def test_nothing_old_leaves_the_cache_running_untouched(runner, backend) -> None:
    pulled(runner, "team/new", b"n" * 1000, NOW)
    [report] = backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=9)
    assert report.method == "" and report.seconds_stopped == 0
    assert "container stop" not in verbs(runner) and "volume rm" not in verbs(runner)
    assert report.to_dict()["bytes_before"] == report.bytes_before


def test_an_empty_cache_volume_has_nothing_to_delete(runner, backend) -> None:
    [report] = backend.clean_mirrors(
        older_than=None, now=NOW, steps=Steps(io.StringIO()), timeout=9
    )
    assert report.plan.empty and report.method == ""
    assert "container rm" not in verbs(runner)


def test_without_older_than_the_cache_starts_again_on_a_fresh_volume(runner, backend) -> None:
    pulled(runner, "team/new", b"n" * 1000, NOW)
    port = runner.state["containers"][CACHE]["ports"][0]
    [report] = backend.clean_mirrors(
        older_than=None, now=NOW, steps=Steps(io.StringIO()), timeout=9
    )
    order = verbs(runner)
    assert order.index("container rm") < order.index("volume rm") < order.index("run --detach")
    assert runner.state["containers"][CACHE]["running"]
    assert not storage(runner).exists()  # a fresh, empty volume
    assert runner.state["containers"][CACHE]["ports"][0]["hostPort"] in (
        port["hostPort"],
        port.get("bound"),
    )
    assert "removed with its volume and started again" in report.method
    assert report.bytes_removed is None and report.bytes_freed is not None


def test_a_failed_copy_starts_the_stopped_cache_again_and_keeps_its_volume(runner, backend) -> None:
    pulled(runner, "team/old", b"o" * 3000, NOW - 3 * DAY)
    runner.state["fail"].append(
        {"match": ["docker", "container", "cp", f"{CACHE}:/var/lib/registry/."],
         "stderr": "Error response from daemon: no space left on device"}  # fmt: skip
    )
    with pytest.raises(CommandFailed, match="no space left on device"):
        backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=9)
    order = verbs(runner)
    assert order.index("container stop") < order.index("container start")
    assert "volume rm" not in order
    assert runner.state["containers"][CACHE]["running"]
    assert (storage(runner) / V2 / "repositories" / "team" / "old").is_dir()


def test_a_stopped_cache_is_stopped_again_after_the_prune(runner, backend) -> None:
    runner.state["containers"][CACHE]["running"] = False
    pulled(runner, "team/old", b"o" * 3000, NOW - 3 * DAY)
    [report] = backend.clean_mirrors(older_than=DAY, now=NOW, steps=Steps(io.StringIO()), timeout=9)
    assert report.method.endswith("(then stopped again, as it was)")
    assert not runner.state["containers"][CACHE]["running"]
    assert not (storage(runner) / V2 / "repositories" / "team" / "old").exists()


def test_a_missing_cache_container_is_reported_and_left_alone(runner, backend) -> None:
    del runner.state["containers"][CACHE]
    [report] = backend.clean_mirrors(
        older_than=None, now=NOW, steps=Steps(io.StringIO()), timeout=9
    )
    assert report.plan.empty and report.method == ""
    assert "container cp" not in verbs(runner)


def test_a_cache_that_does_not_answer_afterwards_is_an_error(runner, backend) -> None:
    pulled(runner, "team/old", b"o" * 3000, NOW - 3 * DAY)
    runner.serve_registry = False
    runner.sync_servers()
    with pytest.raises(OperationFailed, match="does not answer after `gc` cleaned it") as caught:
        backend.clean_mirrors(older_than=None, now=NOW, steps=Steps(io.StringIO()), timeout=1.5)
    assert caught.value.hint and f"docker logs {CACHE}" in caught.value.hint
