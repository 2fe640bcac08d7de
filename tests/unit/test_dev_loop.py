"""The inner loop's scheduling with a fake clock: batching, newest state wins, filtering."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pallet_dev.agents.loop import ChangeQueue, ContextMap, describe_cycle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_is_ready_only_after_a_quiet_period() -> None:
    clock = FakeClock()
    queue = ChangeQueue(quiet=0.2, max_wait=2.0, clock=clock)
    assert queue.take() is None
    queue.add(["planner"])
    clock.now += 0.1
    queue.add(["planner", "tracker"])
    clock.now += 0.15
    assert queue.take() is None, "still within the quiet period of the last event"
    clock.now += 0.1
    batch = queue.take()
    assert batch is not None and batch.agents == {"planner", "tracker"}
    assert batch.first_event == 100.0
    assert queue.take() is None, "the queue is empty after a take"


def test_a_stream_of_writes_cannot_starve_the_loop() -> None:
    clock = FakeClock()
    queue = ChangeQueue(quiet=0.2, max_wait=1.0, clock=clock)
    for _ in range(11):
        queue.add(["packer"])
        clock.now += 0.1
    batch = queue.take()
    assert batch is not None and batch.agents == {"packer"}


def test_edits_during_a_build_make_exactly_one_next_build_of_the_newest_state() -> None:
    clock = FakeClock()
    queue = ChangeQueue(quiet=0.2, clock=clock)
    files = {"packer": "v1"}
    built: list[str] = []

    def cycle(agents: set[str]) -> None:
        for _ in agents:
            built.append(files["packer"])  # a build reads the files as they are now
            # three saves while this build runs
            for version in ("v2", "v3", "v4"):
                files["packer"] = version
                queue.add(["packer"])
                clock.now += 0.05

    queue.add(["packer"])
    clock.now += 0.3
    batch = queue.take()
    assert batch is not None
    cycle(batch.agents)
    clock.now += 0.3
    second = queue.take()
    assert second is not None and second.agents == {"packer"}
    built.append(files["packer"])
    assert built == ["v1", "v4"], "stale states v2 and v3 were never built"
    assert queue.take() is None


def test_the_waiter_wakes_when_the_quiet_period_ends_not_at_the_next_poll() -> None:
    clock = FakeClock()
    queue = ChangeQueue(quiet=0.2, max_wait=1.0, clock=clock)
    assert queue.next_wake(poll=0.5) == 0.5, "nothing pending: just the poll"
    queue.add(["planner"])
    clock.now += 0.15
    assert queue.next_wake(poll=0.5) == pytest.approx(0.05)
    for _ in range(8):  # a stream of writes: max_wait after the first one bounds it
        queue.add(["planner"])
        clock.now += 0.1
    assert queue.next_wake(poll=0.5) == pytest.approx(0.05)
    clock.now += 1.0
    assert queue.next_wake(poll=0.5) == 0.001, "overdue: at once"


def test_a_batch_is_taken_by_a_waiter_once_ready() -> None:
    queue = ChangeQueue(quiet=0.01)
    queue.add(["packer"])
    batch = queue.wait(threading.Event())
    assert batch is not None and batch.agents == {"packer"}


def test_wait_returns_none_once_stopped() -> None:
    queue = ChangeQueue(quiet=0.01)
    stop = threading.Event()
    stop.set()
    assert queue.wait(stop) is None


def test_only_changes_docker_would_send_count(tmp_path: Path) -> None:
    planner = tmp_path / "planner"
    nested = planner / "sub"
    nested.mkdir(parents=True)
    tracker = tmp_path / "tracker"
    tracker.mkdir()
    (planner / ".dockerignore").write_text("*.log\nbuild/\n")
    mapping = ContextMap({"planner": planner, "tracker": tracker})
    assert mapping.agents_for([str(planner / "main.sh")]) == {"planner"}
    assert mapping.agents_for([str(nested / "deep.sh")]) == {"planner"}
    assert mapping.agents_for([str(tracker / "x")]) == {"tracker"}
    ignored = [
        planner / "debug.log",
        planner / "build" / "out",
        planner / ".git" / "index",
        planner / "main.sh.swp",
        planner / "main.sh~",
        planner / ".#main.sh",
        planner / "4913",
        tmp_path / "elsewhere.txt",
    ]
    assert mapping.agents_for(str(p) for p in ignored) == set()
    (planner / ".dockerignore").write_text("*.log\n")
    assert mapping.agents_for([str(planner / ".dockerignore")]) == {"planner"}
    assert mapping.agents_for([str(planner / "build" / "out")]) == {"planner"}, "rules reloaded"


def test_cycle_lines() -> None:
    line = describe_cycle("planner", True, 2.43, {"build": 1.1, "push": 0.2, "rollout": 1.0}, None)
    assert line == "planner ✓ 2.4 s (build 1.1, push 0.2, rollout 1.0)"
    failed = describe_cycle("planner", False, 1.2, {}, "Building agent 'planner' failed\ntail")
    assert failed == "planner ✗ 1.2 s: Building agent 'planner' failed"
