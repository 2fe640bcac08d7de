"""Fixtures for the chart tests: the real Helm binaries (3 and 4) and a renderer.

Helm is found through PALLET_DEV_HELM3 / PALLET_DEV_HELM4, else `helm` on PATH (used
only for the major it reports). Missing → skip on a laptop, fail in CI
(PALLET_DEV_REQUIRE_REAL=1).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool, skip_or_fail

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "pallet-registry"
DEV_VALUES = CHART_DIR / "values-dev.yaml"
BAD_VALUES_DIR = Path(__file__).resolve().parent / "bad-values"
RELEASE = "reg"
NAMESPACE = "pallet"

HELM_MAJORS = {"helm3": ("PALLET_DEV_HELM3", "v3."), "helm4": ("PALLET_DEV_HELM4", "v4.")}


def chart_kube_versions() -> tuple[str, str]:
    """Lowest and highest Kubernetes version admitted by Chart.yaml's kubeVersion."""
    constraint = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=(\d+)\.(\d+)\.0-0 <(\d+)\.(\d+)\.0-0", constraint)
    assert match, f"kubeVersion {constraint!r} is not of the form '>=1.A.0-0 <1.B.0-0'"
    low_major, low_minor, high_major, high_minor = (int(part) for part in match.groups())
    assert low_major == high_major == 1
    return f"1.{low_minor}.0", f"1.{high_minor - 1}.0"


@dataclass(frozen=True)
class Helm:
    """One real Helm binary. Commands pin --kube-version: builds from `go install`
    lack the ldflags that set the default (Helm 3 then assumes Kubernetes 1.20)."""

    name: str
    path: str
    version: str
    kube_version: str

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )

    def template(
        self,
        *values_files: Path,
        sets: Sequence[str] = (),
        set_strings: Sequence[str] = (),
        kube_version: str | None = None,
        show_only: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
        argv += ["--kube-version", kube_version or self.kube_version]
        for path in values_files:
            argv += ["--values", str(path)]
        for expr in sets:
            argv += ["--set", expr]
        for expr in set_strings:
            argv += ["--set-string", expr]
        if show_only:
            argv += ["--show-only", show_only]
        return self.run(*argv)

    def render(self, *values_files: Path, **kwargs: Any) -> list[dict[str, Any]]:
        """The rendered objects; fails the test with Helm's stderr when rendering fails."""
        result = self.template(*values_files, **kwargs)
        assert result.returncode == 0, f"{self.name} template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _helm_version(path: str) -> str:
    result = subprocess.run(
        [path, "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    return result.stdout.strip()


def find_helm(name: str) -> Helm:
    env_var, prefix = HELM_MAJORS[name]
    path = require_tool("helm", env_var)
    version = _helm_version(path)
    if not version.startswith(prefix):
        skip_or_fail(f"{name}: {path} reports {version or 'no version'}; set {env_var}")
    return Helm(name, path, version, kube_version=chart_kube_versions()[1])


@pytest.fixture(params=sorted(HELM_MAJORS))
def helm(request: pytest.FixtureRequest) -> Helm:
    """Each real Helm major in turn (the test runs once per major)."""
    return find_helm(request.param)


@pytest.fixture(scope="session")
def helm4() -> Helm:
    return find_helm("helm4")


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]
