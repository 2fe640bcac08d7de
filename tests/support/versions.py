"""The pinned versions in .ci/versions.env (KEY=value lines), for tests and benchmarks."""

from __future__ import annotations

from functools import cache
from pathlib import Path

VERSIONS_FILE = Path(__file__).resolve().parents[2] / ".ci" / "versions.env"


@cache
def pinned_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found[key.strip()] = value.strip()
    return found


def pinned(key: str) -> str:
    value = pinned_versions().get(key)
    if not value:
        raise KeyError(f"{key} is missing from {VERSIONS_FILE}")
    return value
