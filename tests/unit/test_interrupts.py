"""A signal while a tool starts is held until the runner watches the tool."""

from __future__ import annotations

import io
import os
import subprocess
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pallet_dev.errors import PalletError
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


class QuietUi:
    @contextmanager
    def running(self, names: list[str]) -> Iterator[None]:
        yield

    def done(self, name: str, elapsed: float) -> None: ...

    def failed(self, name: str) -> None: ...

    def warn(self, text: str) -> None: ...


def test_a_signal_during_concurrent_steps_stops_every_threads_tool(
    handler: None, tmp_path: Path
) -> None:
    """The main thread is interrupted while other threads wait on tools: those tools stop
    at once (not at their timeouts), and no thread starts another one."""
    from pallet_dev import runner as runner_module
    from pallet_dev.backends.steps import Step, StepFailureNaming, run_steps

    runner, after = Runner(), tmp_path / "started-after-the-signal"

    def sleep_then_touch(state: Any) -> None:
        try:
            runner.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=60)
        except PalletError:
            pass  # a step that goes on after a failed call (as some do)
        runner.run([sys.executable, "-c", f"open({str(after)!r}, 'w')"], timeout=60)

    def signal_once_both_run() -> None:
        while len(runner_module._running) < 2:
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    state = SimpleNamespace(ui=QuietUi())
    steps = [Step(f"s{i}", lambda s: [], sleep_then_touch, concurrent=True) for i in range(2)]
    threading.Thread(target=signal_once_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_steps(steps, state, StepFailureNaming("retry"), max_parallel=2)
    assert not runner_module._running, "a tool outlived the interruption"
    assert not after.exists(), "a thread started a tool after the interruption"
    runner.run([sys.executable, "-c", "pass"], timeout=60)  # the next run starts tools again


def test_a_signal_during_parallel_agent_builds_stops_every_build(
    handler: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` builds agents in threads: a SIGTERM (or Ctrl-C) in the main thread stops every
    build at once instead of waiting for them to end, and nothing is pushed."""
    from pallet_dev import runner as runner_module
    from pallet_dev.agents import images as images_module
    from pallet_dev.config import load_config
    from pallet_dev.output import Steps
    from pallet_dev.settings import from_config

    bin_dir, pushed = tmp_path / "bin", tmp_path / "pushed"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "if sys.argv[1] == 'build':\n    time.sleep(30)\n"
        f"if sys.argv[1] == 'push':\n    open({str(pushed)!r}, 'w')\n"
    )
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(images_module, "manifest_digest", lambda *a, **k: None)
    monkeypatch.setattr(images_module.os, "cpu_count", lambda: 2)
    for name in ("planner", "tracker"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pallet-dev.yaml").write_text(
        "name: env1\nagents:\n"
        "  - {name: planner, build: {context: planner}}\n"
        "  - {name: tracker, build: {context: tracker}}\n"
    )
    config = from_config(load_config(cwd=tmp_path, environ={})[0])
    builder = images_module.AgentImages(
        "env1",
        config.agents,
        Runner(),
        registry_url="http://127.0.0.1:9",
        registry_host="localhost:9",
    )

    def signal_once_both_build() -> None:
        while len(runner_module._running) < 2:
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_once_both_build, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        builder.ensure(time.monotonic() + 120, Steps(io.StringIO(), quiet=True))
    assert not runner_module._running, "a build outlived the interruption"
    assert not pushed.exists(), "an image was pushed after the interruption"
