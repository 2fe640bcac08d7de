"""The environment every benchmark runs pallet-dev in: what a user's shell gives it.

Two settings of a developer's or CI's shell are not a user's and would inflate every
start-up figure, so the benchmarks drop them:

* ``PYTHONDONTWRITEBYTECODE``: each start then compiles every pallet-dev module again
  (about 0.1 s per command here); an installed wheel has its bytecode from pip, and an
  editable install writes it on the first start. :func:`user_env` also compiles it once.
* ``COVERAGE_PROCESS_START``: coverage's start-up hook, for the test suite only.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

SOURCES = Path(__file__).resolve().parents[1] / "src" / "pallet_dev"
DROPPED = ("PYTHONDONTWRITEBYTECODE", "COVERAGE_PROCESS_START")


def user_env(**settings: str) -> dict[str, str]:
    """os.environ without :data:`DROPPED`, plus ``settings``; pallet-dev's bytecode written."""
    compileall.compile_dir(SOURCES, quiet=1)
    env = {key: value for key, value in os.environ.items() if key not in DROPPED}
    env.update(settings)
    return env
