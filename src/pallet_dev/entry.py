"""The console script's first code: SIGTERM is handled before anything else loads.

SIGTERM becomes KeyboardInterrupt, so Ctrl-C and a `kill` take the same path:
running tools are stopped, locks released, exit code 130. This module alone
installs signal handlers; cli.run only runs the Typer app.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _flush() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def split_config_option(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """Leading ``--config FILE`` / ``--config=FILE`` / ``-c FILE``, then the command's argv.

    None when another global option comes first: the full CLI parses those.
    """
    config: str | None = None
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("--config", "-c") and rest and not rest[0].startswith("-"):
            config = rest.pop(0)
        elif option.startswith("--config=") and len(option) > len("--config="):
            config = option.split("=", 1)[1]
        else:
            return None
    return config, rest


def main() -> NoReturn:
    """The console script: the only place pallet-dev installs a signal handler."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    from pallet_dev.errors import EXIT_INTERRUPTED, PalletError

    argv = sys.argv[1:]
    try:
        # health, Docker `up` and push without the Typer app (bypass.py), for every way of
        # calling: `--config FILE` before the command included
        code: int | None = None
        split = split_config_option(argv)
        try:
            if split is not None:
                from pallet_dev.bypass import run_without_typer

                code = run_without_typer(*split)
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
        sys.exit(EXIT_INTERRUPTED)
    if code is None:
        code = run(argv)
    _flush()
    sys.exit(code)
