"""The registry release is written in a few places that cannot read .ci/versions.env
(the Python package, the chart); they must all name the release pinned there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from pallet_dev.chart.constants import DEFAULT_IMAGE_TAG
from pallet_dev.config import DEFAULT_REGISTRY_IMAGE
from tests.support.versions import pinned

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pallet-registry"


def _release() -> str:
    version = pinned("REGISTRY_VERSION")
    assert re.fullmatch(r"v3\.\d+\.\d+", version), version
    return version.removeprefix("v")


def test_the_package_and_the_chart_pin_the_release_of_versions_env() -> None:
    release = _release()
    assert pinned("REGISTRY_IMAGE") == f"registry:{release}" == DEFAULT_REGISTRY_IMAGE
    assert pinned("LOCAL_REGISTRY_IMAGE").endswith(f"/registry:{release}")
    assert DEFAULT_IMAGE_TAG == release
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["appVersion"] == release
    assert (values["image"]["repository"], values["image"]["tag"]) == ("registry", release)


def test_no_tracked_file_names_another_registry_release() -> None:
    """`registry:3.x.y` and the local build's tag are the pinned release wherever written."""
    release = _release()
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    pattern = re.compile(r"(?<![\w.-])(?:pallet-dev-local/)?registry:(3\.\d+\.\d+)\b")
    stale = []
    for name in tracked:
        path = REPO / name
        if path.suffix in {".png", ".gz"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            stale += [f"{name}:{number}" for m in pattern.finditer(line) if m.group(1) != release]
    assert stale == [], f"registry releases other than {release}: {stale}"


def test_the_package_pins_the_kind_release_of_versions_env() -> None:
    from pallet_dev import versions

    assert versions.show(versions.PINNED_KIND) == pinned("KIND_VERSION")
    # the default node image is taken from the pinned release's entry: it must have one
    assert versions.PINNED_KIND[:2] in versions.KIND_NODE_IMAGES
