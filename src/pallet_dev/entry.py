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


def main() -> NoReturn:
    signal.signal(signal.SIGTERM, _on_sigterm)
    from pallet_dev.errors import PalletError

    try:
        # fast paths: no Typer, pydantic or yaml while the validated config is unchanged
        code: int | None = None
        try:
            if sys.argv[1:2] == ["health"]:
                from pallet_dev.commands.health import fast_health

                code = fast_health(sys.argv[2:])
            elif sys.argv[1:2] == ["up"]:
                from pallet_dev.commands.up import fast_up

                code = fast_up(sys.argv[2:])
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
