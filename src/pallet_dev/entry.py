"""The console script's first code: SIGTERM is handled before anything else loads.

SIGTERM becomes KeyboardInterrupt, so Ctrl-C and a `kill` take the same path:
running tools are stopped, locks released, exit code 130.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

EXIT_INTERRUPTED = 130


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
    signal.signal(signal.SIGTERM, _on_sigterm)
    from pallet_dev.errors import PalletError

    try:
        # health, Docker `up` and push without the Typer app (bypass.py), for every way of
        # calling: `--config FILE` before the command included
        code: int | None = None
        split = split_config_option(sys.argv[1:])
        try:
            if split is not None:
                from pallet_dev.bypass import run_without_typer

                code = run_without_typer(*split)
        except PalletError as exc:  # e.g. an unusable PALLET_DEV_HOME, before any command ran
            from pallet_dev.outcome import report_error

            code = report_error(exc, None)
        if code is not None:
            _flush()
            sys.exit(code)
        from pallet_dev.cli import main as cli_main
    except KeyboardInterrupt:
        print("pallet-dev: interrupted before it started; nothing was changed.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    cli_main()
