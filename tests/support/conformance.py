"""Run the OCI distribution-spec conformance suite against a registry pallet-dev deployed.

The suite is a Go program (OCI_CONFORMANCE_VERSION in .ci/versions.env; CI builds it into
$PALLET_TOOLS_DIR/oci-conformance/conformance and exports PALLET_DEV_OCI_CONFORMANCE).
Every API and data set is on: pull, push, content discovery and content management.

The registry we pin fails three groups of the suite's cases, each for a reason upstream
states in its code; docs/registry-image.md lists them. A case that fails outside those
groups fails the test, so a new failure cannot hide among the known ones.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import skip_or_fail

BINARY_VAR = "PALLET_DEV_OCI_CONFORMANCE"
DEFAULT_BINARY = Path(os.environ.get("PALLET_TOOLS_DIR", "/opt/pallet-tools")) / (
    "oci-conformance/conformance"
)

# The suite's data sets (the second part of a case name) the pinned registry does not
# support, and why (docs/registry-image.md says the same with the upstream references).
KNOWN_UNSUPPORTED = {
    "referrers": "no referrers API: distribution 3.1 has no /v2/<name>/referrers/<digest> route "
    "and sends no OCI-Subject header",
    "sha512": "blobs are stored and answered under their canonical sha256 digest, "
    "so sha512-addressed content comes back with a sha256 Docker-Content-Digest",
    "non-distributable": "a manifest whose non-distributable layers were never pushed is "
    "refused (the manifest handler checks every layer it cannot fetch by URL)",
}


def _group(case: str) -> str | None:
    """Which known-unsupported group a failed case belongs to, if any."""
    parts = case.split("/")
    data_set = parts[1] if len(parts) > 1 else ""
    if case.endswith("/referrers") or data_set.endswith("subject"):
        return "referrers"
    if data_set.startswith("sha512"):
        return "sha512"
    if data_set == "non-distributable-layers":
        return "non-distributable"
    return None


@dataclass
class ConformanceResult:
    """Counts of the junit report's test cases (the suite's own totals count sub-results too)."""

    cases: int
    passed: int
    failed: int
    skipped: int
    by_group: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    output_tail: str = ""

    def summary(self, where: str) -> str:
        groups = ", ".join(f"{name} {count}" for name, count in sorted(self.by_group.items()))
        return (
            f"OCI conformance ({where}): {self.cases} cases, {self.passed} passed, "
            f"{self.failed} failed ({groups or 'none'}; unexpected {len(self.unexpected)}), "
            f"{self.skipped} skipped"
        )


def conformance_binary() -> Path:
    path = Path(os.environ.get(BINARY_VAR) or DEFAULT_BINARY)
    if not os.access(path, os.X_OK):
        skip_or_fail(
            f"the OCI conformance suite is not at {path} (set {BINARY_VAR}, or build it with "
            "`source .ci/lib.sh && ensure_conformance_suite`)"
        )
    return path


def run_conformance(registry: str, results_dir: Path, *, timeout: float = 300) -> ConformanceResult:
    """Run every API and data set against ``registry`` (host:port, plain HTTP)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(results_dir),
        "OCI_REGISTRY": registry,
        "OCI_TLS": "disabled",
        "OCI_RESULTS_DIR": str(results_dir),
        "OCI_REPO1": "conformance/repo1",
        "OCI_REPO2": "conformance/repo2",
        "OCI_LOG": "error",
        # an empty file: the suite's defaults (all on) and these variables, nothing else
        "OCI_CONFIGURATION": str(results_dir / "none.yaml"),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "none.yaml").write_text("{}\n")
    done = subprocess.run(
        [str(conformance_binary())],
        cwd=results_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    junit = results_dir / "junit.xml"
    assert (
        junit.is_file()
    ), f"the suite wrote no junit.xml:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return parse_junit(junit, done.stdout[-3000:] + done.stderr[-1000:])


def parse_junit(path: Path, output_tail: str = "") -> ConformanceResult:
    root = ET.parse(path).getroot()
    by_group: dict[str, int] = {}
    unexpected: list[str] = []
    counts = {"passed": 0, "failure": 0, "skipped": 0}
    cases = list(root.iter("testcase"))
    for case in cases:
        status, name = case.get("status", ""), case.get("name", "")
        counts[status] = counts.get(status, 0) + 1
        if status == "failure":
            group = _group(name)
            if group is None:
                unexpected.append(name)
            else:
                by_group[group] = by_group.get(group, 0) + 1
    return ConformanceResult(
        cases=len(cases),
        passed=counts["passed"],
        failed=counts["failure"],
        skipped=counts["skipped"],
        by_group=by_group,
        unexpected=unexpected,
        output_tail=output_tail,
    )
