"""What every fake CLI shares: answers, a flag parser, the loud failure on unknown argv.

An answer is ``(stdout, stderr, exit code)``. A fake raises :class:`Unexpected` on argv it
does not know; the runner seam turns that into AssertionError, the PATH seam into exit 97.
"""

from __future__ import annotations

import json
from typing import Any

UNEXPECTED = 97

Answer = tuple[str, str, int]


class Unexpected(Exception):
    """argv the fake does not know: the caller's bug, reported loudly."""


def out(data: Any) -> Answer:
    return json.dumps(data, indent=2) + "\n", "", 0


def err(message: str, code: int = 1) -> Answer:
    return "", message + "\n", code


class Flags:
    """A small flag parser: ``--name value``, ``--name=value``, booleans, positionals."""

    def __init__(self, args: list[str], with_value: set[str], booleans: set[str]) -> None:
        self.values: dict[str, list[str]] = {}
        self.booleans: set[str] = set()
        self.positionals: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if arg in booleans:
                self.booleans.add(arg)  # "--wait=watcher" is listed as a whole
            elif arg.startswith("-") and arg != "-":
                name, eq, value = arg.partition("=")
                if name in with_value:
                    if not eq:
                        index += 1
                        value = args[index]
                    self.values.setdefault(name, []).append(value)
                else:
                    raise Unexpected(f"unknown flag {arg}")
            else:
                self.positionals.append(arg)
            index += 1

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.values.get(name)
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])
