"""`up` starts the agents' images before the registry is verified: what it may do early
(hash, ask, build) and what waits for `ensure` (push, reports), against a fake `docker`
on PATH that records its calls."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pallet_dev import runner as runner_module
from pallet_dev.agents import images as images_module
from pallet_dev.agents.images import AgentImages
from pallet_dev.config import load_config
from pallet_dev.errors import OperationFailed
from pallet_dev.output import Steps
from pallet_dev.runner import Runner
from pallet_dev.settings import from_config

Make = Callable[[str], AgentImages]


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Make:
    """An AgentImages for agent 'planner' whose `docker` runs ``build_script`` for a build
    (every call is appended to tmp_path/calls)."""

    def build(build_script: str) -> AgentImages:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        docker = bin_dir / "docker"
        docker.write_text(
            "#!/bin/sh\n"
            f'echo "$1" >> {tmp_path / "calls"}\n'
            'case "$1" in\n'
            f"  build) {build_script} ;;\n"
            "  push) echo 'x: digest: sha256:" + "b" * 64 + " size: 1' ;;\n"
            "esac\n"
        )
        docker.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("DOCKER_BUILDKIT", "0")  # no `docker buildx version` call
        (tmp_path / "planner").mkdir(exist_ok=True)
        (tmp_path / "planner" / "Dockerfile").write_text("FROM scratch\n")
        (tmp_path / "pallet-dev.yaml").write_text(
            "name: env1\nagents:\n  - {name: planner, build: {context: planner}}\n"
        )
        config = from_config(load_config(cwd=tmp_path, environ={})[0])
        return AgentImages(
            "env1",
            config.agents,
            Runner(),
            registry_url="http://127.0.0.1:9",
            registry_host="localhost:9",
        )

    return build


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().split() if path.exists() else []


def started_early(
    make: Make,
    monkeypatch: pytest.MonkeyPatch,
    build_script: str,
    digest: Callable[..., str | None] = lambda *a, **k: None,
) -> AgentImages:
    """The images of 'planner' after start_ahead, the registry answering with ``digest``."""
    monkeypatch.setattr(images_module, "manifest_digest", digest)
    images = make(build_script)
    images.start_ahead(time.monotonic() + 60)
    return images


def settle(images: AgentImages) -> None:
    for future in list(images._ahead.values()):
        future.result(timeout=30)


def ensure(images: AgentImages) -> list[images_module.AgentImage]:
    return images.ensure(time.monotonic() + 60, Steps(io.StringIO(), quiet=True))


def test_a_registry_that_does_not_answer_yet_builds_nothing_early(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry may be down (after `down`) and hold the image: only once `up` has
    it answering does the manifest check decide, and then ensure builds."""
    answering = threading.Event()

    def digest(*args: object, **kwargs: object) -> str | None:
        if not answering.is_set():
            raise OperationFailed("The registry at http://127.0.0.1:9 did not answer.")
        return None

    images = started_early(make, monkeypatch, "true", digest)
    settle(images)
    assert calls(tmp_path) == [], "built before the registry could say it has the image"
    answering.set()
    (built,) = ensure(images)
    assert built.built and calls(tmp_path) == ["build", "push"]


def test_an_image_the_registry_has_is_asked_for_once(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def digest(registry: str, repository: str, tag: str, **kwargs: object) -> str:
        asked.append(tag)
        return "sha256:" + "a" * 64

    (found,) = ensure(started_early(make, monkeypatch, "exit 1", digest))
    assert not found.built and found.digest == "sha256:" + "a" * 64
    assert len(asked) == 1 and calls(tmp_path) == []


def test_an_early_build_is_pushed_only_by_ensure(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = started_early(make, monkeypatch, "echo step 1/1")
    settle(images)
    assert calls(tmp_path) == ["build"], "pushed before the registry was verified"
    (built,) = ensure(images)
    assert built.built and built.digest == "sha256:" + "b" * 64
    assert calls(tmp_path) == ["build", "push"], "built twice"


def test_a_failed_early_build_is_reported_by_ensure_and_nothing_is_pushed(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    images = started_early(make, monkeypatch, "echo 'step 2/3: no such file: main.go'; exit 1")
    settle(images)
    assert capsys.readouterr().err == "", "the early start printed before `up` reached the agents"
    with pytest.raises(OperationFailed, match="Building agent 'planner' failed"):
        ensure(images)
    assert "step 2/3: no such file: main.go" in capsys.readouterr().err
    assert calls(tmp_path) == ["build"]


def test_cancelling_stops_an_early_build(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` failed before the agents (e.g. the registry's port is taken): the build stops."""
    images = started_early(make, monkeypatch, "sleep 30")
    while not runner_module._running:
        time.sleep(0.01)
    images.cancel_ahead()
    assert not runner_module._running, "the build outlived the cancel"
    assert not images._ahead
    runner_module.Runner().run([sys.executable, "-c", "pass"])  # tools start again


def test_the_early_start_returns_once_its_build_runs(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's next imports would hold the GIL while the build's thread still prepares
    `docker build`: start_ahead lets the build start first (waiting on the runner's
    on_start, bounded by AHEAD_SPAWN_WAIT)."""
    monkeypatch.setattr(images_module, "AHEAD_SPAWN_WAIT", 30.0)
    images = started_early(make, monkeypatch, "sleep 30")
    try:
        assert runner_module._running, "start_ahead returned before `docker build` started"
    finally:
        images.cancel_ahead()
    assert not runner_module._running


def test_up_starts_early_only_on_its_own_registry_and_not_to_recreate(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared cluster's registry (and login) is known only once its backend loads; with
    --recreate the registry is about to be replaced: neither starts early."""
    from dataclasses import replace

    from pallet_dev.commands.up import start_images_ahead
    from pallet_dev.context import AppContext
    from pallet_dev.paths import Paths

    make("true")
    config = from_config(load_config(cwd=tmp_path, environ={})[0])
    ctx = AppContext(paths=Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs"))
    started: list[tuple[str, ...]] = []
    monkeypatch.setattr(AgentImages, "start_ahead", lambda self, _: started.append(self.target))
    assert start_images_ahead(ctx, config, 60.0, recreate=False) is not None
    assert started == [("env1", config.registry_url, f"localhost:{config.registry.port}", None)]
    assert start_images_ahead(ctx, replace(config, backend="cluster"), 60.0, recreate=False) is None
    assert start_images_ahead(ctx, config, 60.0, recreate=True) is None
    assert start_images_ahead(ctx, replace(config, agents=()), 60.0, recreate=False) is None
    assert len(started) == 1
