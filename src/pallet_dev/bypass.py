"""The command line read without the Typer app: usage errors, `health`, `up`, `push`.

Calling a Typer command imports Typer and, to convert option values, pydantic: about
200 ms per start, more than `health`'s whole budget and most of what an already
healthy `up` may take (benchmarks/bench_cli.py, bench_up_docker.py). So entry.py reads
every command line here first, with the grammar of grammar.py and Click's rules:

- a usage error Typer is sure to report (an unknown option or command, a value of the
  wrong type or not among the choices, a missing value or operand, an extra operand) is
  reported here, in the same words, with exit 2: bad input fails fast;
- these forms run here, with the settings from settings.load_settings (the cached copy
  when the config is unchanged: no pydantic or yaml either):

    [--config FILE | --config=FILE | -c FILE] health [--json] [--timeout S]
    [--config FILE | ...] up [--prefer-docker | --backend docker|kind] [--json] [--timeout S]
    [--config FILE | ...] push IMAGE [--as NAME] [--json]

`up` with agents runs commands.up.run_up here, as the Typer path would. Without agents,
`up` on kind (or `auto`) runs here only when nothing changed since the last `up`
(commands.up.unchanged_since_last_up: one `docker inspect` and one GET /v2/).
Anything else (`--help`, `--version`, `--verbose`, `--debug`, a value only Typer can
judge, `up` on kind with something to do and no agents) returns None and the Typer
app runs, which says what is wrong as for any command. Errors map to exit codes in
outcome.run_guarded, as on the Typer path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pallet_dev.config_sources import (
    HEALTH_PROBE_SECONDS,
    MAX_PROBE_SECONDS,
    MAX_WAIT_SECONDS,
    UP_TIMEOUT_SECONDS,
)
from pallet_dev.grammar import COMMANDS, GLOBAL, UNJUDGED, Grammar, Invalid, Option

if TYPE_CHECKING:  # the context (runner, log) loads only for a command run here
    from pallet_dev.context import AppContext

PROGRAM = "pallet-dev"


@dataclass(frozen=True)
class Usage:
    """A usage error as Typer words it, and the command whose `--help` the fix names."""

    message: str
    command: str = PROGRAM


@dataclass(frozen=True)
class CommandLine:
    command: str
    values: dict[str, Any]  # by an option's first name; the operands under "operands"
    config_file: str | None = None
    plain: bool = True  # no --verbose or --debug: those take the Typer path

    def only(self, *keys: str) -> bool:
        """True when no other option was given (the others take the Typer path)."""
        return set(self.values) <= {*keys, "operands"}


def parse(
    argv: list[str], grammar: Grammar, command: str = PROGRAM, *, until_command: bool = False
) -> dict[str, Any] | Usage | None:
    """``argv`` by Click's rules: the values (by an option's first name) and the operands
    (under ``"operands"``); a Usage when Typer is sure to refuse it; None when Typer must
    answer (help, a value only it can judge). ``until_command``: the global options,
    up to the command, which starts the operands."""
    long: dict[str, Option] = {}
    short: dict[str, Option] = {}
    for declared in grammar.options:
        for name in (*declared.names, *(() if declared.off is None else (declared.off,))):
            (long if name.startswith("--") else short)[name] = declared
    given: dict[str, list[Any]] = {}  # raw values by option, in the order first given
    loose: list[str] = []
    eager = False
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            if until_command:
                return None
            loose += rest
            break
        if arg[:1] != "-" or len(arg) == 1:
            if until_command:
                loose = [arg, *rest]
                break
            loose.append(arg)
        elif arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            option: Option | None = long.get(name)
            takes_value = option is not None and option.value is not None
            if eq and not takes_value and (option is not None or name in grammar.eager):
                return Usage(f"Option {name!r} does not take a value.")
            if name in grammar.eager:
                eager = True
            elif option is None:
                from difflib import get_close_matches

                known = [*long, *(name for name in grammar.eager if name.startswith("--"))]
                close = sorted(get_close_matches(name, known))
                also = f" (Possible options: {', '.join(close)})" if close else ""
                return Usage(f"No such option: {name}{also}", command)
            elif not takes_value:
                given.setdefault(option.key, []).append(name != option.off)
            elif not eq and not rest:
                return Usage(f"Option {name!r} requires an argument.")
            else:
                given.setdefault(option.key, []).append(inline if eq else rest.pop(0))
        else:  # -abc: short flags, up to one that takes the rest of the word or the next one
            for index, letter in enumerate(arg[1:], 2):
                name = "-" + letter
                flag = short.get(name)
                if name in grammar.eager:
                    eager = True
                elif flag is None:
                    return Usage(f"No such option: {name}", command)
                elif flag.value is None:
                    given.setdefault(flag.key, []).append(True)
                elif index < len(arg) or rest:
                    value = arg[index:] if index < len(arg) else rest.pop(0)
                    given.setdefault(flag.key, []).append(value)
                    break
                else:
                    return Usage(f"Option {name!r} requires an argument.")
    if eager:
        return None
    return _judge(grammar, command, given, loose, until_command)


def _judge(
    grammar: Grammar,
    command: str,
    given: dict[str, list[Any]],
    loose: list[str],
    until_command: bool,
) -> dict[str, Any] | Usage | None:
    """The values converted in the order given, then the operands (Click's order)."""
    found: dict[str, Any] = {}
    options = {option.key: option for option in grammar.options}
    for key, raw in given.items():
        option = options[key]
        if option.value is None:
            found[key] = raw[-1]
            continue
        try:
            values = [option.value(text) for text in (raw if option.multiple else raw[-1:])]
        except Invalid as exc:
            hint = " / ".join(repr(name) for name in option.names)
            return Usage(f"Invalid value for {hint}: {exc}", command)
        if UNJUDGED in values:
            return None
        found[key] = values if option.multiple else values[0]
    if until_command:
        found["operands"] = loose
        return found
    operands: list[str] = []
    for operand in grammar.operands:
        taken = loose if operand.many else loose[:1]
        if not taken and operand.required:
            return Usage(f"Missing argument {operand.name!r}.", command)
        operands += taken
        loose = loose[len(taken) :]
    if loose:
        return Usage(f"Got unexpected extra argument(s) ({' '.join(loose)})", command)
    found["operands"] = operands
    return found


def read_command_line(argv: list[str]) -> CommandLine | Usage | None:
    """The command and its values; a Usage error; None when only Typer can answer."""
    if os.environ.get("_PALLET_DEV_COMPLETE") or not all(arg.isprintable() for arg in argv):
        return None  # shell completion; control characters, which Typer escapes
    top = parse(argv, GLOBAL, until_command=True)
    if not isinstance(top, dict):
        return top
    if not top["operands"] or top["operands"][0].startswith("-"):
        return None  # no command: the help, or "Missing command"
    name, *args = top["operands"]
    grammar = COMMANDS.get(name)
    if grammar is None:
        from difflib import get_close_matches

        close = ", ".join(repr(known) for known in get_close_matches(name, list(COMMANDS)))
        return Usage(f"No such command {name!r}." + (f" Did you mean {close}?" if close else ""))
    found = parse(args, grammar, f"{PROGRAM} {name}")
    if isinstance(found, Usage) and not _home_usable():
        return None  # Typer's root callback reports the unusable PALLET_DEV_HOME first
    if not isinstance(found, dict):
        return found
    plain = not (top.get("--verbose") or top.get("--debug"))
    return CommandLine(name, found, top.get("--config"), plain)


def _home_usable() -> bool:
    from pallet_dev.errors import PalletError
    from pallet_dev.paths import default_paths

    try:
        default_paths()
    except PalletError:
        return False
    return True


def run_without_typer(argv: list[str]) -> int | None:
    """The exit code of a usage error or of a command run here, or None: run the Typer app."""
    line = read_command_line(argv)
    if isinstance(line, Usage):
        from pallet_dev.outcome import report_usage

        return report_usage(line.message, line.command)
    if line is None or not line.plain:
        return None
    run = {"health": _health, "up": _up, "push": _push}.get(line.command)
    return run(line) if run is not None else None


def _guarded(ctx: AppContext, command: Callable[[], int]) -> int:
    from pallet_dev.config_sources import env_flag
    from pallet_dev.outcome import run_guarded

    return run_guarded(
        command,
        debug=env_flag(os.environ.get("PALLET_DEV_DEBUG")),
        log_file=lambda: ctx.log_path,
        event_log=lambda: ctx.log,
    )


def _context(line: CommandLine) -> AppContext:
    from pathlib import Path

    from pallet_dev.context import AppContext

    config_file = Path(line.config_file) if line.config_file else None
    return AppContext(config_file=config_file, command=line.command)


def _seconds(line: CommandLine, default: float, maximum: float) -> float | None:
    """``--timeout``, or its default; None when out of (0, maximum]: the command says so."""
    value = line.values.get("--timeout", default)
    return value if isinstance(value, float) and 0 < value <= maximum else None


def _health(line: CommandLine) -> int | None:
    timeout = _seconds(line, HEALTH_PROBE_SECONDS, MAX_PROBE_SECONDS)
    if timeout is None:
        return None
    from pallet_dev.commands.health import run_health

    ctx, as_json = _context(line), bool(line.values.get("--json"))
    return _guarded(ctx, lambda: run_health(ctx, as_json=as_json, timeout=timeout))


def _up(line: CommandLine) -> int | None:
    timeout = _seconds(line, UP_TIMEOUT_SECONDS, MAX_WAIT_SECONDS)
    if timeout is None or not line.only("--json", "--prefer-docker", "--timeout", "--backend"):
        return None
    given = line.values.get("--backend")
    prefer_docker = bool(line.values.get("--prefer-docker"))
    if given not in (None, "docker", "kind") or (given == "kind" and prefer_docker):
        return None  # contradictory or to be judged: the Typer path says so
    ctx = _context(line)
    settings = ctx.load_settings()  # a config error is reported as on the Typer path
    agents = settings.agents or (ctx.active(settings.name) or {}).get("agents")
    as_json = bool(line.values.get("--json"))
    backend = given or ("docker" if prefer_docker else settings.backend)
    if agents:
        # the whole of `up` as the Typer path runs it (the same function, the same
        # defaults): building and rolling out a changed agent should not wait for Typer
        from pallet_dev.commands.up import run_up

        def up_with_agents() -> int:
            return run_up(
                ctx,
                backend=given,
                prefer_docker=prefer_docker,
                port=None,
                timeout=timeout,
                recreate=False,
                dry_run=False,
                as_json=as_json,
                values_files=[],
                set_overrides=[],
            )

        return _guarded(ctx, up_with_agents)
    if backend in ("auto", "kind"):
        from pallet_dev.commands.up import report_unchanged, unchanged_since_last_up

        if unchanged_since_last_up(ctx, settings):
            return _guarded(ctx, lambda: report_unchanged(ctx, settings, as_json=as_json))
        return None  # the full `up` on the Typer path
    if backend != "docker":
        return None
    from pallet_dev.backends.base import UpOptions
    from pallet_dev.backends.docker import DockerBackend
    from pallet_dev.commands.up import bring_up

    docker = DockerBackend(settings, ctx.runner, ctx.paths)
    options = UpOptions(timeout=timeout)
    return _guarded(ctx, lambda: bring_up(ctx, docker, options, ctx.steps(), as_json=as_json))


def _push(line: CommandLine) -> int | None:
    from pallet_dev.commands.push import run_push

    ctx = _context(line)
    (image,), as_name = line.values["operands"], line.values.get("--as")
    as_json = bool(line.values.get("--json"))
    return _guarded(ctx, lambda: run_push(ctx, image, as_name=as_name, as_json=as_json))
