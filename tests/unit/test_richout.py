"""Rich drawing on a terminal; plain lines everywhere else (what scripts and tests read)."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from pallet_dev.agents.health import AgentHealth
from pallet_dev.output import Steps, make_steps
from pallet_dev.probe import ProbeResult
from pallet_dev.richout import (
    AgentProgress,
    LayerProgress,
    LiveSteps,
    health_table,
    status_renderable,
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def terminal_console(out: io.StringIO) -> Console:
    return Console(file=out, force_terminal=True, width=120, color_system="standard")


def test_plain_steps_off_a_terminal_and_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert type(make_steps(io.StringIO())) is Steps
    assert type(make_steps(FakeTerminal(), quiet=True)) is Steps
    assert isinstance(make_steps(FakeTerminal()), LiveSteps)
    monkeypatch.setenv("NO_COLOR", "1")
    assert type(make_steps(FakeTerminal())) is Steps


def test_live_steps_spin_then_print_done_and_failed_lines() -> None:
    out = io.StringIO()
    steps = LiveSteps(FakeTerminal(), console=terminal_console(out))
    with steps.step("Creating kind cluster 'x'"):
        time.sleep(0.25)  # long enough for the live display to draw a frame
    with pytest.raises(RuntimeError):
        with steps.step("Installing chart"):
            raise RuntimeError("boom")
    with steps.running(["Pointing containerd", "Reading release"]):
        time.sleep(0.15)
    steps.done("Pointing containerd", 0.2)
    steps.warn("careful")
    text = out.getvalue()
    assert "✓" in text and "Creating kind cluster 'x'" in text and "(0.2s)" in text
    assert "✗" in text and "Installing chart" in text and "careful" in text
    assert "\x1b[" in text  # drawn: colour and cursor control
    assert steps.completed[0][:2] == ("Creating kind cluster 'x'", True)
    assert steps.completed[1][:2] == ("Installing chart", False)
    assert steps._live is None  # nothing left spinning


def test_health_and_status_tables_render() -> None:
    out = io.StringIO()
    console = terminal_console(out)
    results = [ProbeResult("registry", "http://127.0.0.1:5000/v2/", True, 200, 1.5, None)]
    agents = [AgentHealth("packer", "docker", "http://127.0.0.1:1/", False, 0, 1, None, 2.0, "x")]
    console.print(health_table(results, agents))
    doc = {
        "environment": "pallet-dev",
        "up": True,
        "backend": "docker",
        "endpoint": "localhost:5000",
        "registry": {"healthy": True, "error": None, "status_code": 200, "image": "r:1",
                     "version": None, "repository_count": 3},  # fmt: skip
        "data": None,
        "agents": [{"name": "packer", "ready": 1, "desired": 1, "restarts": 0,
                    "digest": "sha256:abc", "endpoint": "http://127.0.0.1:1/"}],  # fmt: skip
        "backends": {"docker": {"exists": True, "container": {"name": "c", "running": True}}},
    }
    console.print(status_renderable(doc))
    text = out.getvalue()
    for word in ("SERVICE", "registry", "up", "DOWN", "packer", "Repositories", "1/1",
                 "sha256:abc", "[docker]", "container"):  # fmt: skip
        assert word in text, word


def test_layer_progress_counts_layers_from_docker_push_lines() -> None:
    console = terminal_console(io.StringIO())
    lines = [
        "The push refers to repository [localhost:5000/p/a]",
        "5f70bf18a086: Preparing",
        "9c1b6dd6c1e6: Preparing",
        "5f70bf18a086: Pushed",
        "9c1b6dd6c1e6: Layer already exists",
        "1: digest: sha256:abc size: 528",  # the summary line is no layer
    ]
    with LayerProgress(console, "pushing") as progress:
        for line in lines[:3]:
            progress.feed(line)
        assert progress._layers == {"5f70bf18a086": False, "9c1b6dd6c1e6": False}
        for line in lines[3:]:
            progress.feed(line)
        assert set(progress._layers.values()) == {True}
    rows = AgentProgress(console, ["a"])
    for line in lines:
        rows.layer("a", line)
    task = rows._progress.tasks[0]
    assert (task.total, task.completed) == (2, 2)
    rows.clear()


def test_lines_printed_while_steps_spin_never_deadlock() -> None:
    """The refresh thread renders (taking the step state) while other threads print."""
    import threading

    steps = LiveSteps(FakeTerminal(), console=terminal_console(io.StringIO()))

    def busy() -> None:
        with steps.running(["a", "b"]):
            for index in range(40):
                steps.note(f"line {index}")
                time.sleep(0.005)
        with steps.step("c"):
            steps.warn("inside a step")

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "LiveSteps deadlocked"
    assert steps._live is None
