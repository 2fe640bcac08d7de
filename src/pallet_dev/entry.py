"""The console script's first code: SIGTERM is handled before anything else loads.

SIGTERM becomes KeyboardInterrupt, so Ctrl-C and a `kill` take the same path:
running tools are stopped, locks released, exit code 130. This module alone
installs signal handlers (interrupts.on_signal, which holds a signal back while the
runner starts a tool); cli.run only runs the Typer app.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn


def _flush() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def main() -> NoReturn:
    """The console script: the only place pallet-dev installs a signal handler."""
    from pallet_dev.interrupts import on_signal

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # Ctrl-C too is held while a tool starts
    argv = sys.argv[1:]
    try:
        from pallet_dev.errors import PalletError

        # usage errors, health, Docker `up` and push without the Typer app (bypass.py)
        code: int | None = None
        try:
            from pallet_dev.bypass import run_without_typer

            code = run_without_typer(argv)
        except PalletError as exc:  # e.g. an unusable PALLET_DEV_HOME, before any command ran
            from pallet_dev.outcome import report_error

            code = report_error(exc, None)
        except Exception as exc:  # noqa: BLE001 - a bug before the command's own guard
            from pallet_dev.config_sources import env_flag
            from pallet_dev.outcome import report_crash

            code = report_crash(
                exc, debug=env_flag(os.environ.get("PALLET_DEV_DEBUG")), log_file=None
            )
        if code is None:
            from pallet_dev.cli import run
    except KeyboardInterrupt:
        print("pallet-dev: interrupted before it started; nothing was changed.", file=sys.stderr)
        sys.exit(130)  # errors.EXIT_INTERRUPTED: the signal may come before errors.py loaded
    if code is None:
        code = run(argv)
    # the command is over: a late SIGTERM ends the process the default way, as it does once
    # the interpreter finalizes, rather than as a KeyboardInterrupt that no guard catches
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _flush()
    sys.exit(code)
