"""The Engine API's answers are the docker CLI's, on this host's real daemon: the same
containers found by name and by label, read the same, with no CLI call on the way."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from pallet_dev.eventlog import EventLog
from pallet_dev.runner import Runner
from pallet_dev.tools.docker import Docker
from tests.support.real_docker import TEST_IMAGE, docker, require_docker

pytestmark = [pytest.mark.docker]


def test_the_socket_and_the_cli_find_and_read_the_same_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_docker()
    monkeypatch.delenv("PALLET_DEV_DOCKER_API", raising=False)
    env = f"pdt-engine-{secrets.token_hex(3)}"
    labels = {"dev.pallet.environment": env}
    running, created = f"{env}-running", f"{env}-created"
    common = ["--label", f"dev.pallet.environment={env}", "--label", "dev.pallet.agent=a"]
    try:
        docker("run", "-d", "--name", running, *common, "-p", "127.0.0.1::5000",
               "-e", "PALLET_X=1", TEST_IMAGE)  # fmt: skip
        docker("create", "--name", created, *common, TEST_IMAGE)
        log = tmp_path / "api.jsonl"
        through_socket = Docker(Runner(EventLog(log), engine_api=True))
        through_cli = Docker(Runner(EventLog(tmp_path / "cli.jsonl")))
        names = [running, created, f"{env}-absent"]

        found = through_socket.inspect_containers(names)
        assert found == through_cli.inspect_containers(names)
        assert sorted(found) == [created, running]
        assert found[running].running and found[running].host_port(5000)
        assert "PALLET_X=1" in found[running].env
        assert not found[created].running
        listed = through_socket.containers_with_labels(labels, key="dev.pallet.agent")
        assert listed == through_cli.containers_with_labels(labels, key="dev.pallet.agent")
        assert listed == [created, running]
        assert through_socket.inspect_container(running) == through_cli.inspect_container(running)

        events = [json.loads(line) for line in log.read_text().splitlines()]
        assert {e["event"] for e in events} == {"api"}, events  # no CLI call, no fallback
        assert {e["status"] for e in events} == {200, 404}
    finally:
        docker("rm", "-f", "-v", running, created, check=False)


def test_an_agents_older_build_images_go_from_this_host_in_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real tags of one image: listed the same through the socket and the CLI, the newest
    first; prune_host removes the stale batch and leaves every other repository alone."""
    import io
    import time

    from pallet_dev.agents import images as images_module
    from pallet_dev.agents.images import AgentImage, AgentImages
    from pallet_dev.output import Steps
    from pallet_dev.settings import AgentBuild, AgentSettings

    require_docker()
    monkeypatch.delenv("PALLET_DEV_DOCKER_API", raising=False)
    KEEP_LOCAL, PRUNE_BATCH = 1, 2  # fewer images to make (a second apart each)
    monkeypatch.setattr(images_module, "KEEP_LOCAL", KEEP_LOCAL)
    monkeypatch.setattr(images_module, "PRUNE_BATCH", PRUNE_BATCH)
    env = f"pdt-prune-{secrets.token_hex(3)}"
    repository = f"localhost:5999/{env}/planner"
    count = KEEP_LOCAL + PRUNE_BATCH + 1
    tags = [f"{repository}:t{n}" for n in range(count)]  # t0 the oldest
    other = f"localhost:5999/{env}/tracker:t0"
    try:
        for n, tag in enumerate(tags):  # each its own image: the order is their creation's
            (tmp_path / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\nLABEL n={n}\n")
            docker("build", "-q", "-t", tag, str(tmp_path))
            time.sleep(1.05)  # Docker keeps creation times in whole seconds
        docker("tag", tags[0], other)
        through_socket = Docker(Runner(EventLog(tmp_path / "api.jsonl"), engine_api=True))
        through_cli = Docker(Runner())
        listed = through_socket.image_tags(repository)
        assert listed == through_cli.image_tags(repository) == list(reversed(tags))

        agent = AgentSettings(name="planner", build=AgentBuild(context=str(tmp_path)))
        images = AgentImages(
            env, [agent], Runner(engine_api=True), registry_url="http://127.0.0.1:5999",
            registry_host="localhost:5999",
        )  # fmt: skip
        current = AgentImage("planner", "localhost:5999", f"{env}/planner", f"t{count - 1}",
                             "sha256:" + "a" * 64, True)  # fmt: skip
        out = io.StringIO()
        images.prune_host([current], Steps(out))
        assert through_cli.image_tags(repository) == list(reversed(tags))[: KEEP_LOCAL + 1]
        assert through_cli.image_tags(f"localhost:5999/{env}/tracker") == [other]
        assert f"Removed {count - KEEP_LOCAL - 1} older build images" in out.getvalue()
    finally:
        docker("image", "rm", *tags, other, check=False)
