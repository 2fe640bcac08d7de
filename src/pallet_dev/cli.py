"""Command-line wiring only: the Typer app, global options, one function per command.

Behaviour lives in ``pallet_dev.commands.*``; each is imported inside its command
so `--help` and `health` do not pay for the others. Exceptions become exit codes in
one place, :func:`pallet_dev.outcome.run_guarded`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.exceptions import TyperException

from pallet_dev import __version__
from pallet_dev.config_sources import HEALTH_PROBE_SECONDS, UP_TIMEOUT_SECONDS
from pallet_dev.context import AppContext
from pallet_dev.errors import EXIT_USAGE
from pallet_dev.outcome import report_usage

if TYPE_CHECKING:
    from pallet_dev.eventlog import EventLog

app = typer.Typer(
    name="pallet-dev",
    help="One command to the Pallet system's dev environment: a local OCI registry and the "
    "agents (kind + Helm, or Docker).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# the context of the running command, so run() can name its log file in errors
_CURRENT: dict[str, AppContext] = {}


class BackendChoice(str, Enum):
    auto = "auto"
    kind = "kind"
    docker = "docker"
    cluster = "cluster"


def _version(value: bool) -> None:
    if value:
        print(f"pallet-dev {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Config file (default: pallet-dev.yaml here or above)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Mirror the JSON log lines to stderr.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if not isinstance(ctx.obj, AppContext):  # one injected by run(argv, context) is kept
        ctx.obj = AppContext(
            config_file=config, verbose=verbose, debug=debug, command=ctx.invoked_subcommand or ""
        )
    _CURRENT["ctx"] = ctx.obj


def _ctx(ctx: typer.Context) -> AppContext:
    assert isinstance(ctx.obj, AppContext)
    return ctx.obj


@app.command()
def up(
    ctx: typer.Context,
    backend: Annotated[
        BackendChoice | None,
        typer.Option(help="auto | kind | docker | cluster (default: from config)."),
    ] = None,
    prefer_docker: Annotated[
        bool, typer.Option("--prefer-docker", help="Run the registry as a plain Docker container.")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Host port of the registry.")] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the environment to be healthy.")
    ] = UP_TIMEOUT_SECONDS,
    recreate: Annotated[
        bool, typer.Option(help="Rebuild the container or cluster (data is kept).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (exact commands); change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    values: Annotated[
        list[str] | None,
        typer.Option("--values", "-f", help="Extra Helm values file (kind backend; repeatable)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Helm value override KEY=VALUE (kind backend; repeatable)."),
    ] = None,
) -> None:
    """Bring the environment up: a registry answering on localhost:<port>."""
    from pallet_dev.commands.up import run_up

    raise typer.Exit(
        run_up(
            _ctx(ctx),
            backend=backend.value if backend else None,
            prefer_docker=prefer_docker,
            port=port,
            timeout=timeout,
            recreate=recreate,
            dry_run=dry_run,
            as_json=as_json,
            values_files=values or [],
            set_overrides=set_ or [],
        )
    )


@app.command()
def down(
    ctx: typer.Context,
    clean: Annotated[
        bool, typer.Option("--clean", help="Also delete the registry data and the logs.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    backend: Annotated[
        BackendChoice | None,
        typer.Option(help="Only this backend's environment (default: from config; auto = both)."),
    ] = None,
) -> None:
    """Tear the environment down. Pushed images are kept unless --clean."""
    from pallet_dev.commands.down import run_down

    raise typer.Exit(
        run_down(
            _ctx(ctx), clean=clean, as_json=as_json, backend=backend.value if backend else None
        )
    )


@app.command()
def health(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds each probe may take.")
    ] = HEALTH_PROBE_SECONDS,
) -> None:
    """Probe the registry and every configured service; exit 1 if any is unhealthy."""
    from pallet_dev.commands.health import run_health

    raise typer.Exit(run_health(_ctx(ctx), as_json=as_json, timeout=timeout))


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show what is running, where the registry answers and what it holds."""
    from pallet_dev.commands.status import run_status

    raise typer.Exit(run_status(_ctx(ctx), as_json=as_json))


@app.command()
def dev(
    ctx: typer.Context,
    agents: Annotated[
        list[str] | None, typer.Argument(help="Agents to watch (default: every built agent).")
    ] = None,
    backend: Annotated[
        BackendChoice | None,
        typer.Option(help="auto | kind | docker | cluster (default: from config)."),
    ] = None,
    prefer_docker: Annotated[
        bool, typer.Option("--prefer-docker", help="Run on plain Docker.")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Host port of the registry.")] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds the first `up` may take to be healthy.")
    ] = UP_TIMEOUT_SECONDS,
    cycle_timeout: Annotated[
        float, typer.Option(help="Seconds one rebuild may take until the agent serves.")
    ] = 60.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (NDJSON).")
    ] = False,
) -> None:
    """Watch the agents' sources; rebuild and roll out each changed agent."""
    from pallet_dev.commands.dev import run_dev

    raise typer.Exit(
        run_dev(
            _ctx(ctx),
            agents=agents or [],
            backend=backend.value if backend else None,
            prefer_docker=prefer_docker,
            port=port,
            timeout=timeout,
            cycle_timeout=cycle_timeout,
            as_json=as_json,
        )
    )


@app.command()
def logs(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="The agent's name (agents: in pallet-dev.yaml).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines (default: all).")] = None,
) -> None:
    """Print an agent's logs (the first replica's), in either backend."""
    from pallet_dev.commands.logs import run_logs

    raise typer.Exit(run_logs(_ctx(ctx), agent, follow=follow, tail=tail))


@app.command()
def push(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="An image in this host's Docker, e.g. api:dev.")],
    as_name: Annotated[
        str | None,
        typer.Option("--as", help="Repository[:tag] at the registry (default: the image's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Push an image to the local registry (only missing layers move); print the pull name."""
    from pallet_dev.commands.push import run_push

    raise typer.Exit(run_push(_ctx(ctx), image, as_name=as_name, as_json=as_json))


@app.command()
def gc(
    ctx: typer.Context,
    keep: Annotated[
        int | None, typer.Option(help="Keep the N newest tags of each repository.")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Delete tags older than this: 30m, 12h, 7d."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go and the commands; change nothing.")
    ] = False,
    mirrors: Annotated[
        bool,
        typer.Option(
            "--mirrors",
            help="Also clean the pull-through caches: all of it, or with --older-than what "
            "they have not fetched within DURATION.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delete old tags from the local registry, then collect its garbage; print bytes freed."""
    from pallet_dev.commands.gc import run_gc

    raise typer.Exit(
        run_gc(
            _ctx(ctx),
            keep=keep,
            older_than=older_than,
            dry_run=dry_run,
            as_json=as_json,
            mirrors=mirrors,
        )
    )


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    backend: Annotated[
        BackendChoice | None, typer.Option(help="Check for this backend (default: from config).")
    ] = None,
) -> None:
    """Check every prerequisite and say how to fix what is missing."""
    from pallet_dev.commands.doctor import run_doctor

    raise typer.Exit(
        run_doctor(_ctx(ctx), as_json=as_json, backend=backend.value if backend else None)
    )


def _event_log() -> EventLog | None:
    """The run's log once the root callback made the context (a crash is written there)."""
    ctx_obj = _CURRENT.get("ctx")
    return ctx_obj.log if ctx_obj is not None else None


def _log_file() -> Path | None:
    ctx_obj = _CURRENT.get("ctx")
    if ctx_obj is not None and ctx_obj._log is not None:
        return ctx_obj._log.path
    return None


def report_usage_error(exc: TyperException) -> int:
    """A usage error as the documented `pallet-dev: error:` and `fix:` lines (exit 2).

    `pallet-dev` alone still prints the help (no_args_is_help), as Click does.
    """
    show = getattr(exc, "show", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and callable(show):
        show()
        return int(getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE)
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    report_usage(str(message), getattr(ctx, "command_path", None) or "pallet-dev")
    return int(getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE)


def run(argv: Sequence[str], context: AppContext | None = None) -> int:
    """Run the app on ``argv``; outcome.run_guarded turns every outcome into the exit code.

    ``context``, when given, is the run's AppContext as it is (the root callback keeps it):
    a caller or a test chooses its paths and options. Signals are entry.main's.
    """
    args = list(argv)
    from pallet_dev.config_sources import env_flag
    from pallet_dev.outcome import run_guarded

    debug = (
        "--debug" in args
        or env_flag(os.environ.get("PALLET_DEV_DEBUG"))
        or (context is not None and context.debug)
    )
    _CURRENT.clear()  # an error before the root callback names no earlier run's log

    def invoke() -> int:
        command = typer.main.get_command(app)  # guarded too: a signal may come meanwhile
        try:
            # Typer turns KeyboardInterrupt (Ctrl-C, SIGTERM) into exit code 130
            result = command.main(
                args=args, prog_name="pallet-dev", standalone_mode=False, obj=context
            )
        except TyperException as exc:  # usage errors: unknown option, bad value type
            return report_usage_error(exc)
        except typer.Abort:
            raise KeyboardInterrupt from None
        return result if isinstance(result, int) else 0

    return run_guarded(invoke, debug=debug, log_file=_log_file, event_log=_event_log)
