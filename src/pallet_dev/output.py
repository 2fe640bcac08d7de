"""Terminal output: kind-style ✓/✗ steps on stderr, data on stdout.

Colour only when the stream is a terminal and ``NO_COLOR`` is unset. No rich
import here: this module is on every command's start-up path. On a terminal,
``make_steps`` returns richout.LiveSteps (spinners, elapsed time) instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Steps:
    """Ordered progress lines: ` ✓ Starting registry container (0.4s)`."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.color = use_color(self.stream)
        self.completed: list[tuple[str, bool, float]] = []

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def title(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f" • {text}", file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        print(self._paint(f" ! {text}", "33"), file=self.stream, flush=True)

    def done(self, name: str, elapsed: float | None = None) -> None:
        self.completed.append((name, True, elapsed or 0.0))
        if not self.quiet:
            suffix = f" ({elapsed:.1f}s)" if elapsed is not None and elapsed >= 0.05 else ""
            print(f" {self._paint('✓', '32')} {name}{suffix}", file=self.stream, flush=True)

    def failed(self, name: str) -> None:
        self.completed.append((name, False, 0.0))
        print(f" {self._paint('✗', '31')} {name}", file=self.stream, flush=True)

    @contextmanager
    def running(self, names: Sequence[str]) -> Iterator[None]:
        """Steps that run at once elsewhere (threads); each reports done/failed itself."""
        yield

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.color and not self.quiet:
            print(f" • {name} ...", end="\r", file=self.stream, flush=True)
        started = time.monotonic()
        try:
            yield
        except BaseException:
            if self.color and not self.quiet:
                print("\033[2K", end="", file=self.stream)
            self.failed(name)
            raise
        if self.color and not self.quiet:
            print("\033[2K", end="", file=self.stream)
        self.done(name, time.monotonic() - started)


def make_steps(stream: TextIO, *, quiet: bool = False) -> Steps:
    """Live steps drawn with rich on a terminal (NO_COLOR unset); plain lines otherwise."""
    if quiet or not use_color(stream):
        return Steps(stream, quiet=quiet)
    from pallet_dev.richout import LiveSteps

    return LiveSteps(stream)


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 cache``, ``2 caches``; ``words`` when the plural is not word + s."""
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


def megabytes(size: int | None) -> str:
    """Bytes as the reports show them: ``12.3 MB``, or ``size unknown``."""
    return f"{size / 1e6:.1f} MB" if isinstance(size, int) else "size unknown"
