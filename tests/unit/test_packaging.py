"""The wheel carries every package and the chart (pyproject.toml lists them by hand)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setuptools_config() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["tool"]["setuptools"])


def test_every_source_package_is_listed() -> None:
    source = ROOT / "src"
    found = {
        ".".join(init.parent.relative_to(source).parts)
        for init in source.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    listed = set(setuptools_config()["packages"])  # type: ignore[call-overload]
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_the_chart_ships_inside_the_package() -> None:
    config = setuptools_config()
    assert config["package-dir"] == {"": "src", "pallet_dev.charts": "charts"}
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = data["tool"]["setuptools"]["package-data"]["pallet_dev.charts"]
    for chart in sorted((ROOT / "charts").iterdir()):
        deepest = max(
            len(path.relative_to(chart).parts) for path in chart.rglob("*") if path.is_file()
        )
        patterns = [f"{chart.name}/.helmignore"] + [
            f"{chart.name}/" + "/".join(["*"] * depth) for depth in range(1, deepest + 1)
        ]
        assert [p for p in listed if p.startswith(f"{chart.name}/")] == patterns, chart.name
