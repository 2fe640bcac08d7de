"""The one place where an outcome becomes an exit code and a message on stderr.

Used by the Typer CLI (cli.run) and by the fast paths (entry.py), so an error
reads and exits the same whichever way a command ran.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pallet_dev.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Interrupted,
    PalletError,
)

if TYPE_CHECKING:
    from pallet_dev.eventlog import EventLog

# a usage error quotes the user's words: its message is cut to this many characters
MAX_USAGE_MESSAGE = 300


def report_interrupted(message: str | None = None) -> None:
    print(
        (
            f"\npallet-dev: {message}"
            if message
            else "\npallet-dev: interrupted. Run the same command again to converge, "
            "or `pallet-dev down` to remove what was made."
        ),
        file=sys.stderr,
    )


def report_error(exc: PalletError, log_file: Path | None) -> int:
    """Print the one-sentence error, its fix and the log file; return its exit code."""
    print(f"pallet-dev: error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"  fix: {exc.hint}", file=sys.stderr)
    if log_file is not None:
        print(f"  log: {log_file}", file=sys.stderr)
    return exc.exit_code


def report_usage(message: str, command: str) -> int:
    """A usage error as the documented `pallet-dev: error:` and `fix:` lines (exit 2).

    ``message`` is Typer's wording (cli.report_usage_error) or the same words from
    bypass.py, which reports the usage errors it is sure of without Typer.
    """
    message = " ".join(message.split())
    if len(message) > MAX_USAGE_MESSAGE:
        message = message[: MAX_USAGE_MESSAGE - 3] + "..."
    ended = message if message.endswith(("?", "!")) else f"{message.rstrip('.')}."
    print(f"pallet-dev: error: {ended}", file=sys.stderr)
    print(f"  fix: see `{command} --help` for the options and their values.", file=sys.stderr)
    return EXIT_USAGE


def report_crash(exc: Exception, *, debug: bool, log_file: Path | None) -> int:
    """An exception that is no PalletError is a bug of ours: say so, ask for a report.

    Its own exit code (not 1) lets a script tell a bug from a failed operation.
    """
    if debug:
        import traceback

        traceback.print_exc()
    detail = str(exc).rstrip(".")
    print(
        f"pallet-dev: internal error: {type(exc).__name__}{': ' + detail if detail else ''}.",
        file=sys.stderr,
    )
    attach = f", with the log file {log_file}" if log_file is not None else ""
    rerun = "" if debug else "; re-run with --debug for the traceback"
    print(f"  please report this bug in pallet-dev{attach}{rerun}.", file=sys.stderr)
    return EXIT_INTERNAL


def run_guarded(
    command: Callable[[], int],
    *,
    debug: bool,
    log_file: Callable[[], Path | None],
    event_log: Callable[[], EventLog | None] = lambda: None,
) -> int:
    """Run ``command``; map every way it can end to an exit code. A bug of ours is written
    to ``event_log`` (the run's log, once a command opened it) with its traceback."""
    try:
        code = command()
    except (KeyboardInterrupt, Interrupted) as exc:
        # an Interrupted with its own message (`dev`: "stopped watching ...") says it instead
        own = isinstance(exc, Interrupted) and exc.message != Interrupted().message
        report_interrupted(str(exc.args[0]) if own else None)
        return EXIT_INTERRUPTED
    except PalletError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        return report_error(exc, log_file())
    except BrokenPipeError:
        # the reader went away (`pallet-dev status --json | head`): not an error of ours;
        # point stdout at /dev/null so the interpreter's final flush stays quiet
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        log = event_log()
        if log is not None:
            import traceback

            trace = traceback.format_exc()
            log.write("crash", error=f"{type(exc).__name__}: {exc}"[:500], traceback=trace[-8000:])
        return report_crash(exc, debug=debug, log_file=log_file())
    if code == EXIT_INTERRUPTED:
        report_interrupted()  # Typer turned a KeyboardInterrupt into this code
    return code
