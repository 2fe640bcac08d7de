"""A signal while a tool starts is held until the runner watches the tool."""

from __future__ import annotations

import os
import subprocess
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pallet_dev.interrupts import Held, on_signal
from pallet_dev.runner import Runner


@pytest.fixture
def handler() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_signal_outside_a_hold_interrupts_at_once(handler: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_held_signal_is_raised_at_release_and_only_once(handler: None) -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with Held() as held:
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("after the signal")  # the handler ran and only noted it
            held.release()
            reached.append("after release")
    assert reached == ["after the signal"]
    with Held():  # nothing left pending
        pass


def test_a_failure_inside_the_hold_still_ends_in_the_interruption(handler: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        with Held():
            os.kill(os.getpid(), signal.SIGTERM)
            raise OSError("the tool could not start")


def test_other_threads_never_hold(handler: None) -> None:
    seen: list[bool] = []

    def worker() -> None:
        with Held() as held:
            seen.append(held._on)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [False]


class SignalledAtSpawn(Runner):
    """A runner that gets SIGTERM right after the tool's process exists, before it is
    watched: the moment a signal from outside can only hit by chance."""

    pids: list[int] = []

    def _spawn(self, *args: Any, **kwargs: Any) -> tuple[subprocess.Popen[str], float]:
        proc, started = super()._spawn(*args, **kwargs)
        self.pids.append(proc.pid)
        os.kill(os.getpid(), signal.SIGTERM)
        return proc, started


@pytest.mark.parametrize("on_output", [False, True])
def test_a_signal_as_the_tool_starts_stops_the_tool(handler: None, on_output: bool) -> None:
    runner = SignalledAtSpawn()
    runner.pids = []
    with pytest.raises(KeyboardInterrupt):
        runner.run(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            timeout=120,
            on_output=(lambda line: None) if on_output else None,
        )
    (pid,) = runner.pids
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left running
        os.kill(pid, 0)
