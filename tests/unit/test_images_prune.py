"""This host's older build images of an agent go in batches; the newest few stay, an image
a container uses stays, and nothing but the agent's own repository is touched (the fake
docker's world)."""

from __future__ import annotations

import io
from pathlib import Path

from pallet_dev.agents.images import KEEP_LOCAL, PRUNE_BATCH, AgentImage, AgentImages, stale_tags
from pallet_dev.config import load_config
from pallet_dev.output import Steps
from pallet_dev.settings import from_config
from tests.fakes.runner import FakeToolsRunner

REPO = "localhost:5000/env1/planner"


def test_nothing_goes_until_a_batch_has_gathered() -> None:
    current = f"{REPO}:c"
    older = [f"{REPO}:o{n}" for n in range(KEEP_LOCAL + PRUNE_BATCH)]  # newest first
    assert stale_tags([current, *older[:-1]], current) == []
    assert stale_tags([*older[:2], current, *older[2:]], current) == older[KEEP_LOCAL:]
    assert current not in stale_tags([*older, current], current)


def images_for(tmp_path: Path, runner: FakeToolsRunner) -> AgentImages:
    (tmp_path / "planner").mkdir()
    (tmp_path / "planner" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pallet-dev.yaml").write_text(
        "name: env1\nagents:\n  - {name: planner, build: {context: planner}}\n"
        "  - {name: ready, image: 'team/ready:1'}\n"
    )
    config = from_config(load_config(cwd=tmp_path, environ={})[0])
    return AgentImages(
        "env1",
        config.agents,
        runner,
        registry_url="http://127.0.0.1:5000",
        registry_host="localhost:5000",
    )


def built(agent: str, tag: str) -> AgentImage:
    return AgentImage(agent, "localhost:5000", f"env1/{agent}", tag, "sha256:" + "a" * 64, True)


def test_the_older_images_of_an_agent_just_built_go_and_the_newest_stay(tmp_path: Path) -> None:
    runner = FakeToolsRunner()
    host = runner.state["host_images"]
    older = [f"{REPO}:o{n}" for n in range(KEEP_LOCAL + PRUNE_BATCH + 1)]
    others = ["localhost:5000/env1/plannerx:o1", "localhost:5000/env2/planner:o1", "team/ready:1"]
    host += [*others, *reversed(older), f"{REPO}:now"]  # arrival order: the oldest first
    runner.state["images_in_use"] = [older[-1]]  # a container still runs the oldest
    out = io.StringIO()
    images_for(tmp_path, runner).prune_host(
        [built("planner", "now"), built("ready", "o1")], Steps(out)
    )
    assert [i for i in host if i.startswith(f"{REPO}:")] == [
        older[-1],
        *reversed(older[:KEEP_LOCAL]),
        f"{REPO}:now",
    ]
    assert all(other in host for other in others)
    removed = PRUNE_BATCH  # all stale ones but the one in use
    assert (
        f"Removed {removed} older build images of agent 'planner' from this host" in out.getvalue()
    )
    assert "'ready'" not in out.getvalue()  # a ready image's tags are not pallet-dev's builds


def test_an_agent_that_was_not_built_or_a_short_history_removes_nothing(tmp_path: Path) -> None:
    runner = FakeToolsRunner()
    host = runner.state["host_images"]
    host += [f"{REPO}:o{n}" for n in range(KEEP_LOCAL + PRUNE_BATCH)]
    before = list(host)
    images = images_for(tmp_path, runner)
    unchanged = AgentImage("planner", "localhost:5000", "env1/planner", "o1", "sha256:1", False)
    images.prune_host([unchanged], Steps(io.StringIO()))
    images.prune_host([built("planner", "o0")], Steps(io.StringIO()))
    assert host == before
    assert not any(call[1:3] == ["image", "rm"] for call in runner.calls)


def test_a_failure_to_list_is_a_warning(tmp_path: Path) -> None:
    runner = FakeToolsRunner()
    runner.state["fail"].append(
        {"match": ["docker", "image", "ls"], "stderr": "permission denied while listing images"}
    )
    out = io.StringIO()
    images_for(tmp_path, runner).prune_host([built("planner", "now")], Steps(out))
    assert "Could not remove older build images of agent 'planner'" in out.getvalue()
