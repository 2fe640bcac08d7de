"""The commands entry.py runs without the Typer app: `health`, `up`, `push`.

Calling a Typer command imports Typer and, to convert option values, pydantic: about
200 ms per start, more than `health`'s whole budget and most of what an already
healthy `up` may take (benchmarks/bench_cli.py, bench_up_docker.py). So these few
forms are parsed here, with the settings from settings.load_settings (the cached copy
when the config is unchanged: no pydantic or yaml either):

    [--config FILE | --config=FILE | -c FILE] health [--json] [--timeout S]
    [--config FILE | ...] up [--prefer-docker | --backend docker|kind] [--json] [--timeout S]
    [--config FILE | ...] push IMAGE [--as NAME] [--json]

(entry.py takes the global ``--config`` off first.)
`up` on kind runs here only when nothing changed since the last `up`
(commands.up.unchanged_since_last_up: one `docker inspect` and one GET /v2/).
Anything else (another option, a value to judge, `--help`, `up` on kind with something
to do, or with agents) returns None and the Typer app runs, which says what is wrong as
for any command.
Errors map to exit codes in outcome.run_guarded, as on the Typer path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pallet_dev.config_sources import (
    HEALTH_PROBE_SECONDS,
    MAX_PROBE_SECONDS,
    MAX_WAIT_SECONDS,
    UP_TIMEOUT_SECONDS,
)
from pallet_dev.context import AppContext

# an option's value, or None when the Typer app must judge it
Convert = Callable[[str], object | None]


def parse(
    argv: list[str], flags: tuple[str, ...], options: Mapping[str, Convert], operands: int = 0
) -> dict[str, Any] | None:
    """``--flag``, ``--option VALUE`` / ``--option=VALUE`` and up to ``operands`` operands
    (under ``"operands"``); None for anything else or a value ``options`` refuses."""
    found: dict[str, Any] = {}
    given: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        name, eq, inline = arg.partition("=")
        if arg in flags:
            found[arg] = True
        elif name in options and (eq and inline or not eq and rest and rest[0][:1] != "-"):
            value = options[name](inline if eq else rest.pop(0))
            if value is None:
                return None
            found[name] = value
        elif not arg.startswith("-") and len(given) < operands:
            given.append(arg)
        else:
            return None
    found["operands"] = given
    return found


def seconds(maximum: float) -> Convert:
    """A number of seconds in (0, maximum], else None."""

    def convert(text: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            return None
        return value if 0 < value <= maximum else None

    return convert


def run_without_typer(config_file: str | None, argv: list[str]) -> int | None:
    """The exit code of a command run here, or None: run the Typer app.

    ``config_file`` is the global ``--config`` given before the command (entry.py).
    """
    run = {"health": _health, "up": _up, "push": _push}.get(argv[0]) if argv else None
    return run(argv[0], config_file, argv[1:]) if run is not None else None


def _guarded(ctx: AppContext, command: Callable[[], int]) -> int:
    from pallet_dev.config_sources import env_flag
    from pallet_dev.outcome import run_guarded

    return run_guarded(
        command, debug=env_flag(os.environ.get("PALLET_DEV_DEBUG")), log_file=lambda: ctx.log_path
    )


def _context(command: str, config_file: str | None) -> AppContext:
    from pathlib import Path

    return AppContext(config_file=Path(config_file) if config_file else None, command=command)


def _health(command: str, config_file: str | None, argv: list[str]) -> int | None:
    parsed = parse(argv, ("--json",), {"--timeout": seconds(MAX_PROBE_SECONDS)})
    if parsed is None:
        return None
    from pallet_dev.commands.health import run_health

    ctx = _context(command, config_file)
    timeout = parsed.get("--timeout", HEALTH_PROBE_SECONDS)
    return _guarded(ctx, lambda: run_health(ctx, as_json="--json" in parsed, timeout=timeout))


def _up(command: str, config_file: str | None, argv: list[str]) -> int | None:
    def backend_name(value: str) -> object | None:
        return value if value in ("docker", "kind") else None

    valued = {"--timeout": seconds(MAX_WAIT_SECONDS), "--backend": backend_name}
    parsed = parse(argv, ("--json", "--prefer-docker"), valued)
    if parsed is None:
        return None
    given = parsed.get("--backend")
    if given == "kind" and "--prefer-docker" in parsed:
        return None  # contradictory: the Typer path says so
    ctx = _context(command, config_file)
    settings = ctx.load_settings()  # a config error is reported as on the Typer path
    if settings.agents or (ctx.active(settings.name) or {}).get("agents"):
        return None  # agents are built and deployed on the Typer path
    as_json = "--json" in parsed
    backend = given or ("docker" if "--prefer-docker" in parsed else settings.backend)
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
    options = UpOptions(timeout=parsed.get("--timeout", UP_TIMEOUT_SECONDS))
    return _guarded(ctx, lambda: bring_up(ctx, docker, options, ctx.steps(), as_json=as_json))


def _push(command: str, config_file: str | None, argv: list[str]) -> int | None:
    parsed = parse(argv, ("--json",), {"--as": str}, operands=1)
    if parsed is None or not parsed["operands"]:
        return None
    from pallet_dev.commands.push import run_push

    ctx = _context(command, config_file)
    (image,), as_name = parsed["operands"], parsed.get("--as")
    return _guarded(ctx, lambda: run_push(ctx, image, as_name=as_name, as_json="--json" in parsed))
