"""The inner loop's scheduling: which agents changed, when a batch is ready, what runs next.

File events arrive from a watcher thread; :class:`ChangeQueue` keeps the changed agents
as a set (so any number of edits to one agent make one pending rebuild) and says a batch
is ready once no event came for ``quiet`` seconds (or ``max_wait`` after the first one,
so a stream of writes cannot starve the loop). A cycle builds from the files as they
are when it starts; edits made during a cycle land in the queue and make exactly one
next cycle, built from the newest state: no queue of stale builds.

Pure logic with an injectable clock, so the unit tests run it with a fake one.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pallet_dev.agents.context_hash import DockerIgnore

# editor and tool leftovers that never mean "rebuild" (besides .dockerignore)
EDITOR_TEMP = ("*.swp", "*.swx", "*.swo", "*~", ".#*", "#*#", "4913", "*.tmp", ".DS_Store")
VCS_DIRS = (".git", ".hg", ".svn")


@dataclass
class Batch:
    agents: set[str]
    first_event: float  # clock time of the batch's first event (detect latency starts here)


@dataclass
class ChangeQueue:
    # editors save in bursts of a few ms (temp file, rename), and the watcher already
    # groups events 5 ms apart: 0.02 s more of quiet groups a save, and every 0.01 s
    # here is 0.01 s of each cycle (a burst cut short only costs one more cycle: the
    # newest state is built next)
    quiet: float = 0.02
    max_wait: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _pending: set[str] = field(default_factory=set)
    _first: float | None = None
    _last: float | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, agents: Iterable[str]) -> None:
        names = set(agents)
        if not names:
            return
        with self._cond:
            now = self.clock()
            self._pending |= names
            self._first = now if self._first is None else self._first
            self._last = now
            self._cond.notify_all()

    def ready(self) -> bool:
        """A batch is waiting and the files have been quiet long enough."""
        if not self._pending or self._first is None or self._last is None:
            return False
        now = self.clock()
        return now - self._last >= self.quiet or now - self._first >= self.max_wait

    def take(self) -> Batch | None:
        """The ready batch (and an empty queue), or None."""
        with self._cond:
            if not self.ready():
                return None
            assert self._first is not None
            batch = Batch(set(self._pending), self._first)
            self._pending, self._first, self._last = set(), None, None
            return batch

    def wait(self, stop: threading.Event, poll: float = 0.1) -> Batch | None:
        """Block until a batch is ready (None once ``stop`` is set)."""
        while not stop.is_set():
            batch = self.take()
            if batch is not None:
                return batch
            with self._cond:
                self._cond.wait(timeout=self.next_wake(poll))
        return None

    def next_wake(self, poll: float) -> float:
        """Seconds until the pending batch turns ready (at most ``poll``: a new event or
        a stop wakes the waiter anyway)."""
        if not self._pending or self._first is None or self._last is None:
            return poll
        now = self.clock()
        due = min(self._last + self.quiet, self._first + self.max_wait)
        return max(0.001, min(poll, due - now))


class ContextMap:
    """Which agent a changed path belongs to, and whether the change counts at all."""

    def __init__(self, contexts: Mapping[str, Path]) -> None:
        # longest context first, so a nested context wins over its parent
        self.contexts = sorted(
            ((name, Path(path).resolve()) for name, path in contexts.items()),
            key=lambda item: len(str(item[1])),
            reverse=True,
        )
        self.ignores = {name: DockerIgnore.from_context(path) for name, path in self.contexts}

    def agents_for(self, paths: Iterable[str]) -> set[str]:
        changed: set[str] = set()
        for raw in paths:
            path = Path(raw)
            for name, context in self.contexts:
                try:
                    relative = path.relative_to(context)
                except ValueError:
                    continue
                if self.counts(name, relative.as_posix()):
                    changed.add(name)
                break
        return changed

    def counts(self, name: str, relative: str) -> bool:
        parts = relative.split("/")
        if any(part in VCS_DIRS for part in parts):
            return False
        base = parts[-1]
        if any(fnmatch.fnmatchcase(base, pattern) for pattern in EDITOR_TEMP):
            return False
        if relative == ".dockerignore":
            # the rules themselves changed: reload them; the hash decides if it matters
            self.ignores[name] = DockerIgnore.from_context(dict(self.contexts)[name])
            return True
        return not self.ignores[name].excluded(relative)


def watch_contexts(
    contexts: Mapping[str, Path], queue: ChangeQueue, stop: threading.Event
) -> threading.Thread:
    """A daemon thread that feeds the queue from file events under every context."""
    import watchfiles

    mapping = ContextMap(contexts)
    roots = sorted({str(path) for _, path in mapping.contexts})

    def run() -> None:
        for changes in watchfiles.watch(
            *roots,
            stop_event=stop,
            # a batch once 5 ms pass without an event (5-10 ms after the last one; the
            # queue's quiet period then groups bursts): 200 wake-ups a second, idle
            debounce=50,
            step=5,
            rust_timeout=200,
            yield_on_timeout=False,
            raise_interrupt=False,
            ignore_permission_denied=True,
        ):
            queue.add(mapping.agents_for(path for _, path in changes))

    thread = threading.Thread(target=run, name="pallet-watch", daemon=True)
    thread.start()
    return thread


def describe_cycle(
    agent: str, ok: bool, seconds: float, phases: Mapping[str, float], error: str | None
) -> str:
    """`planner ✓ 2.4 s (build 1.1, push 0.2, rollout 1.0)` or `planner ✗ 1.2 s: <error>`."""
    shown = ", ".join(f"{name} {value:.1f}" for name, value in phases.items() if name != "detect")
    if ok:
        return f"{agent} ✓ {seconds:.1f} s ({shown})"
    first = (error or "failed").splitlines()[0]
    return f"{agent} ✗ {seconds:.1f} s: {first}"
