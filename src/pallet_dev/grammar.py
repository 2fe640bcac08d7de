"""The command line's grammar as data: each command's options, their values, its operands.

cli.py declares the same commands to Typer; this table lets entry.py read a command line
(bypass.parse) without importing Typer and pydantic, which cost about 200 ms per start:
the commands bypass.py runs, and the usage errors, which must fail fast (issue 13).
tests/unit/test_usage_errors.py checks the table against the Typer app and the messages
against the Typer path, so the two cannot drift apart.

A value converter returns the value, raises Invalid with Typer's message for a value
Typer is sure to refuse, or returns UNJUDGED when only Typer can tell (then it runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


class Invalid(ValueError):
    """A value Typer refuses; the message is the one it prints after `Invalid value for`."""


UNJUDGED = object()  # a value only Typer can judge

Convert = Callable[[str], object]

# a plain number (Typer converts with pydantic: these it always takes)
_PLAIN_LENGTH = 15


def _no_number_in(text: str) -> bool:
    """True when no reading of ``text`` can be a number: no digit, no inf or nan."""
    folded = text.casefold()
    return not any(ch.isnumeric() for ch in text) and "inf" not in folded and "nan" not in folded


def _plain(text: str, *, fraction: bool) -> bool:
    """Digits (and one fraction, if allowed) in ASCII, short: pydantic takes it as it is."""
    whole, dot, decimals = text.partition(".")
    digits = whole.isdigit() and (not dot or fraction and decimals.isdigit())
    return text.isascii() and digits and len(text) <= _PLAIN_LENGTH


def _numeric(kind: type[int] | type[float], noun: str, article: str) -> Convert:
    """A plain number as ``kind``; pydantic's message for a text that holds none."""
    refused = f"Input should be a valid {noun}, unable to parse string as {article} {noun}"

    def convert(text: str) -> object:
        if _plain(text, fraction=kind is float):
            return kind(text)
        if _no_number_in(text):
            raise Invalid(refused)
        return UNJUDGED

    return convert


integer = _numeric(int, "integer", "an")
number = _numeric(float, "number", "a")


def text(value: str) -> object:
    return value


def path(value: str) -> object:
    return value if value else UNJUDGED  # Typer reads "" as ".", the fast paths as unset


@dataclass(frozen=True)
class Choice:
    """One of these names, exactly (Typer compares case-sensitively)."""

    names: tuple[str, ...]

    def __call__(self, value: str) -> object:
        if value in self.names:
            return value
        quoted = ", ".join(repr(name) for name in self.names)
        raise Invalid(f"Value error, {value!r} is not one of {quoted}.")


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]  # the first is the key of its value
    value: Convert | None = None  # None: a flag
    off: str | None = None  # a flag's `--no-...` form
    multiple: bool = False

    @property
    def key(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Operand:
    name: str
    required: bool = True
    many: bool = False


@dataclass(frozen=True)
class Grammar:
    options: tuple[Option, ...]
    operands: tuple[Operand, ...] = ()
    eager: tuple[str, ...] = ("-h", "--help")  # options that end the parse: Typer answers


BACKEND = Choice(("auto", "kind", "docker", "cluster"))
JSON = Option(("--json",))

GLOBAL = Grammar(
    (
        Option(("--config", "-c"), path),
        Option(("--verbose", "-v")),
        Option(("--debug",)),
    ),
    eager=("-h", "--help", "--version"),
)

COMMANDS: Mapping[str, Grammar] = {
    "up": Grammar(
        (
            Option(("--backend",), BACKEND),
            Option(("--prefer-docker",)),
            Option(("--port",), integer),
            Option(("--timeout",), number),
            Option(("--recreate",), off="--no-recreate"),
            Option(("--dry-run",)),
            JSON,
            Option(("--values", "-f"), text, multiple=True),
            Option(("--set",), text, multiple=True),
        )
    ),
    "down": Grammar((Option(("--clean",)), JSON, Option(("--backend",), BACKEND))),
    "health": Grammar((JSON, Option(("--timeout",), number))),
    "status": Grammar((JSON,)),
    "dev": Grammar(
        (
            Option(("--backend",), BACKEND),
            Option(("--prefer-docker",)),
            Option(("--port",), integer),
            Option(("--timeout",), number),
            Option(("--cycle-timeout",), number),
            JSON,
        ),
        (Operand("agents", required=False, many=True),),
    ),
    "logs": Grammar(
        (Option(("--follow", "-f")), Option(("--tail",), integer)), (Operand("agent"),)
    ),
    "push": Grammar((Option(("--as",), text), JSON), (Operand("image"),)),
    "gc": Grammar(
        (
            Option(("--keep",), integer),
            Option(("--older-than",), text),
            Option(("--dry-run",)),
            Option(("--mirrors",)),
            JSON,
        )
    ),
    "doctor": Grammar((JSON, Option(("--backend",), BACKEND))),
}
