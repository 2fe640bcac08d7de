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
