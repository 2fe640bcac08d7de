"""SIGTERM and Ctrl-C as KeyboardInterrupt, held back while a tool is being started.

A signal that lands between the moment a tool's process exists and the moment the
runner watches it would leave that tool running after pallet-dev exits: nothing
holds its pid yet. While the main thread starts a tool, the handler only notes the
signal; :meth:`Held.release`, called once the runner watches the tool, raises it.
entry.main installs :func:`on_signal`; in-process callers (tests) keep Python's own
handlers and the hold changes nothing for them.
"""

from __future__ import annotations

import threading
from types import FrameType, TracebackType

_held = 0
_pending = False


def on_signal(signum: int, frame: FrameType | None) -> None:
    """The handler entry.main installs for SIGTERM and SIGINT."""
    global _pending
    if _held:
        _pending = True
        return
    raise KeyboardInterrupt


class Held:
    """Hold signals back in the main thread until :meth:`release` (or the block's end).

    Other threads never hold: the handler runs in the main thread only.
    """

    def __init__(self) -> None:
        self._on = False

    def __enter__(self) -> Held:
        global _held
        if threading.current_thread() is threading.main_thread():
            _held += 1
            self._on = True
        return self

    def release(self) -> None:
        """Stop holding; a signal that came meanwhile is raised here."""
        global _held, _pending
        if not self._on:
            return
        self._on = False
        _held -= 1
        if not _held and _pending:
            _pending = False
            raise KeyboardInterrupt

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # a failure to start the tool still ends in the interruption the user asked for
        self.release()
