"""Terminal drawing with rich: live steps, tables, progress. Imported only to draw.

Used when the stream is a terminal and ``NO_COLOR`` is unset (output.use_color); every
other case prints output.py's plain, stable lines, which the tests and scripts read.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from pallet_dev.output import Steps, megabytes

if TYPE_CHECKING:
    from pallet_dev.agents.health import AgentHealth
    from pallet_dev.probe import ProbeResult


# `docker push`/`pull` status lines start with a short layer ID: "5f70bf18a086: Pushed"
_LAYER_LINE = re.compile(r"^([0-9a-f]{12}): (.+)$")


def _plain(value: object) -> Text:
    """A cell that is never read as rich markup ("[docker]", image names, errors)."""
    return Text(str(value))


def console_for(stream: TextIO) -> Console:
    return Console(file=stream, highlight=False, soft_wrap=True)


class LiveSteps(Steps):
    """kind-style steps: a spinner with the elapsed time on each running step, then ✓/✗."""

    def __init__(self, stream: TextIO, *, console: Console | None = None) -> None:
        super().__init__(stream)
        self.console = console or console_for(stream)
        # _state guards _running only and is never held while calling into rich (whose
        # refresh thread holds its own lock and then calls _render); _live_lock orders
        # starting and stopping the display
        self._state = threading.Lock()
        self._live_lock = threading.Lock()
        self._running: dict[str, float] = {}  # name -> monotonic start
        self._live: Live | None = None

    def _render(self) -> Group:
        now = time.monotonic()
        with self._state:
            running = list(self._running.items())
        return Group(
            *(
                Spinner("dots", text=Text(f"{name} ({now - started:.1f}s)"), style="cyan")
                for name, started in running
            )
        )

    def _start(self, names: Sequence[str]) -> None:
        with self._state:
            for name in names:
                self._running[name] = time.monotonic()
        with self._live_lock:
            if self._live is None:
                self._live = Live(
                    get_renderable=self._render,
                    console=self.console,
                    refresh_per_second=10,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start()

    def _stop(self, names: Sequence[str]) -> None:
        with self._state:
            for name in names:
                self._running.pop(name, None)
            idle = not self._running
        if idle:
            with self._live_lock:
                live, self._live = self._live, None
            if live is not None:
                live.stop()

    def _line(self, text: Text) -> None:
        self.console.print(text)  # rich's console serialises its own writes

    def title(self, text: str) -> None:
        self._line(Text(text))

    def note(self, text: str) -> None:
        self._line(Text(f" • {text}"))

    def warn(self, text: str) -> None:
        self._line(Text(f" ! {text}", style="yellow"))

    def done(self, name: str, elapsed: float | None = None) -> None:
        self.completed.append((name, True, elapsed or 0.0))
        suffix = f" ({elapsed:.1f}s)" if elapsed is not None and elapsed >= 0.05 else ""
        self._line(Text.assemble(" ", ("✓", "green"), f" {name}", (suffix, "dim")))

    def failed(self, name: str) -> None:
        self.completed.append((name, False, 0.0))
        self._line(Text.assemble(" ", ("✗", "red"), f" {name}"))

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._start([name])
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self._stop([name])
            self.failed(name)
            raise
        self._stop([name])
        self.done(name, time.monotonic() - started)

    @contextmanager
    def running(self, names: Sequence[str]) -> Iterator[None]:
        self._start(names)
        try:
            yield
        finally:
            self._stop(names)


def health_table(results: Sequence[ProbeResult], agents: Sequence[AgentHealth]) -> Table:
    from pallet_dev.commands.health import _as_probe

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in (("SERVICE", "left"), ("STATE", "left"), ("CODE", "right"),
                            ("MS", "right"), ("URL", "left"), ("NOTE", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in [*results, *(_as_probe(agent) for agent in agents)]:
        table.add_row(
            _plain(result.name),
            Text("up", "green") if result.healthy else Text("DOWN", "bold red"),
            str(result.status_code) if result.status_code is not None else "-",
            f"{result.latency_ms:.1f}",
            _plain(result.url),
            _plain(result.error or result.detail or ""),
        )
    return table


def status_renderable(doc: dict[str, Any]) -> Group:
    """`status` as a summary grid, an agents table and one grid per backend."""
    from pallet_dev.commands.status import _short, mirror_line

    registry = doc["registry"]
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("Environment", _plain(doc["environment"]))
    summary.add_row(
        "Backend", _plain(doc["backend"]) if doc["up"] else Text("nothing is up", "yellow")
    )
    answer = (
        Text("answering", "green")
        if registry["healthy"]
        else Text(f"not answering ({registry['error'] or registry['status_code']})", "red")
    )
    summary.add_row("Registry", Text.assemble(f"{doc['endpoint']} ", answer))
    version = f" (version {registry['version']})" if registry.get("version") else ""
    summary.add_row("Image", _plain(f"{registry['image']}{version}"))
    if registry["repository_count"] is not None:
        summary.add_row("Repositories", str(registry["repository_count"]))
    data = doc.get("data")
    if data:
        summary.add_row("Data", _plain(f"{data['location']} ({megabytes(data['size_bytes'])})"))
    parts: list[Any] = [summary]
    if not doc["up"]:
        parts.append(Text("Run `pallet-dev up` to start it.", "yellow"))
    agents = doc.get("agents") or []
    if agents:
        table = Table(title="Agents", title_justify="left", box=None, header_style="bold")
        for column in ("AGENT", "READY", "RESTARTS", "IMAGE", "ENDPOINT"):
            table.add_column(column)
        for agent in agents:
            if agent.get("error"):
                table.add_row(_plain(agent.get("name", "-")), Text(agent["error"], "red"))
                continue
            ready, desired = agent.get("ready", 0), agent.get("desired")
            table.add_row(
                _plain(agent["name"]),
                Text(f"{ready}/{desired}", "green" if ready == desired else "yellow"),
                str(agent.get("restarts", 0)),
                _plain(agent.get("digest") or agent.get("image")),
                _plain(agent.get("endpoint") or "-"),
            )
        parts.append(table)
    for mirror in doc.get("mirrors") or []:
        summary.add_row("Cache", _plain(mirror_line(mirror)))
    for name, report in doc["backends"].items():
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        label = _plain(f"[{name}]")
        if report.get("error"):
            grid.add_row(label, Text(report["error"], "red"))
        elif not report.get("exists"):
            grid.add_row(label, "nothing running")
        else:
            grid.add_row(label, "")
            for key, value in report.items():
                if key != "exists":
                    grid.add_row(_plain(f"  {key}"), _plain(_short(value)))
        parts.append(grid)
    return Group(*parts)


def count_layer(layers: dict[str, bool], line: str) -> bool:
    """Record one `docker push`/`pull` status line in ``layers`` (id -> done); True if it was
    one. Docker prints a line per layer when its output is not a terminal (``<id>:
    Preparing``, ``Waiting``, ``Pushed``, ``Layer already exists``, ...); a layer is done
    at its final word, and stays done."""
    match = _LAYER_LINE.match(line.strip())
    if match is None:
        return False
    layer, state = match.groups()
    if not layers.get(layer):
        layers[layer] = state.startswith(LayerProgress.DONE)
    return True


class LayerProgress:
    """A progress bar of image layers from `docker push`/`docker pull` output lines.

    Docker prints one status line per layer when its output is not a terminal
    (``<id>: Preparing``, ``Waiting``, ``Pushed``, ``Layer already exists``, ...); a layer
    is done at its final word. ``feed`` takes each line.
    """

    DONE = ("Pushed", "Layer already exists", "Mounted from", "Pull complete", "Already exists")

    def __init__(self, console: Console, description: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._layers: dict[str, bool] = {}
        self._progress = Progress(
            TextColumn("   {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("layers"),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task(description, total=None)

    def __enter__(self) -> LayerProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def feed(self, line: str) -> None:
        if not count_layer(self._layers, line):
            return
        self._progress.update(
            self._task,
            total=len(self._layers),
            completed=sum(self._layers.values()),
        )


class AgentProgress:
    """One row per agent while images build and push: spinner, phase or newest build line,
    a bar of pushed layers, elapsed time. Transient: the ✓ lines stay, the rows go."""

    def __init__(self, console: Console, agents: Sequence[str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[agent]}", style="bold"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", style="dim"),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._lock = threading.Lock()
        self._tasks = {
            name: self._progress.add_task("waiting", agent=name, total=None) for name in agents
        }
        self._layers: dict[str, dict[str, bool]] = {name: {} for name in agents}
        self._progress.start()

    def show(self, agent: str, line: str) -> None:
        task = self._tasks.get(agent)
        if task is not None:
            self._progress.update(task, description=line.strip()[:80])

    def layer(self, agent: str, line: str) -> None:
        """A `docker push` status line: count layers seen and finished."""
        task = self._tasks.get(agent)
        if task is None:
            return
        with self._lock:
            layers = self._layers[agent]
            if not count_layer(layers, line):
                return
            total, done = len(layers), sum(layers.values())
        self._progress.update(task, total=total, completed=done, description="pushing layers")

    def clear(self) -> None:
        self._progress.stop()
