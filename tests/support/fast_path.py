"""A `python -c` program that runs the console script and reports which heavy modules
(Typer, pydantic, yaml) it imported, on its last stderr line: the fast paths' proof."""

from __future__ import annotations


def heavy_modules_probe(label: str = "") -> str:
    """The program; its last stderr line is ``[label ]['pydantic', ...]`` ([] on a fast path)."""
    prefix = f"{label!r}, " if label else ""
    return (
        "import atexit, sys\n"
        f"atexit.register(lambda: print({prefix}sorted(m for m in ('typer', 'pydantic', 'yaml')"
        " if m in sys.modules), file=sys.stderr))\n"
        "sys.argv = ['pallet-dev', *sys.argv[1:]]\n"
        "from pallet_dev.entry import main\n"
        "main()\n"
    )
