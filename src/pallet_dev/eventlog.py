"""Structured JSON-lines log of every command pallet-dev runs.

One line per event: time, command (the pallet-dev subcommand), step, argv,
duration and exit code. ``--verbose`` mirrors each line to stderr. Secrets are
never written: values of flags that carry them are masked.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

# Flags whose following argument is a secret, and KEY=VALUE prefixes to mask.
_SECRET_FLAGS = {"--password", "--password-stdin", "-p", "--token", "--htpasswd"}
_SECRET_MARKERS = ("password", "passwd", "htpasswd", "token", "secret")
MASK = "***"


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Mask secrets in argv: values after secret flags and KEY=VALUE secrets."""
    redacted: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            redacted.append(MASK)
            mask_next = False
            continue
        if arg in _SECRET_FLAGS and arg != "-p":
            redacted.append(arg)
            mask_next = arg != "--password-stdin"
            continue
        key, sep, _ = arg.partition("=")
        if sep and any(marker in key.lower() for marker in _SECRET_MARKERS):
            redacted.append(f"{key}={MASK}")
            continue
        redacted.append(arg)
    return redacted


class EventLog:
    """Append-only JSON-lines log; opened lazily so commands that log nothing touch no file."""

    def __init__(self, path: Path | None, *, command: str = "", mirror: TextIO | None = None):
        self.path = path
        self.command = command
        self.mirror = mirror
        self._failed = False

    def write(self, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1000) % 1000:03d}Z",
            "pid": os.getpid(),
            "command": self.command,
            "event": event,
        }
        record.update(fields)
        if "argv" in record and record["argv"] is not None:
            record["argv"] = redact_argv(record["argv"])
        line = json.dumps(record, default=str)
        if self.mirror is not None:
            print(line, file=self.mirror, flush=True)
        if self.path is None or self._failed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:  # a log we cannot write must never break the command
            self._failed = True
            print(f"pallet-dev: cannot write log {self.path}: {exc}", file=sys.stderr)


NULL_LOG = EventLog(None)
