"""Run the OCI distribution-spec conformance suite against a registry pallet-dev deployed.

The suite is a Go program (OCI_CONFORMANCE_VERSION in .ci/versions.env; CI builds it into
$PALLET_TOOLS_DIR/oci-conformance/conformance and exports PALLET_DEV_OCI_CONFORMANCE).
Every API and data set is on: pull, push, content discovery and content management.

The registry we pin fails three groups of the suite's cases, each for a reason upstream
states in its code; docs/registry-image.md lists them. Only the exact cases listed in
KNOWN_FAILURES may fail (as often as listed); any other failure, or an error status, fails
the test, so a new failure cannot hide among the known ones.
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


# Every case the pinned registry fails, with how many times the suite runs it (the
# same list as docs/registry-image.md). Anything else failing, or failing more often, fails
# the test.
KNOWN_FAILURES: dict[str, int] = {
    "artifacts-with-subject/push/manifest-by-digest": 3,
    "artifacts-with-subject/push/manifest-by-tag": 2,
    "artifacts-with-subject/referrers": 1,
    "empty/referrers": 1,
    "index-with-subject/push/manifest-by-digest": 3,
    "index-with-subject/push/manifest-by-tag": 1,
    "index-with-subject/referrers": 1,
    "missing-subject/push/manifest-by-digest": 1,
    "missing-subject/push/manifest-by-tag": 1,
    "missing-subject/referrers": 1,
    "non-distributable-layers/head/manifest-head-by-digest": 1,
    "non-distributable-layers/head/manifest-head-by-tag": 1,
    "non-distributable-layers/pull/manifest-by-digest": 1,
    "non-distributable-layers/pull/manifest-by-tag": 1,
    "non-distributable-layers/push/manifest-by-digest": 1,
    "non-distributable-layers/push/manifest-by-tag": 1,
    "non-distributable-layers/tag-list": 1,
    "sha512 blobs/chunked multi and put chunk/blob-patch-chunked": 1,
    "sha512 blobs/chunked multi/blob-patch-chunked": 1,
    "sha512 blobs/chunked out-of-order and put chunk/blob-patch-chunked": 1,
    "sha512 blobs/chunked out-of-order/blob-patch-chunked": 1,
    "sha512 blobs/chunked single/blob-patch-chunked": 1,
    "sha512 blobs/empty/blob-get": 1,
    "sha512 blobs/empty/blob-head": 1,
    "sha512 blobs/empty/blob-patch-chunked": 1,
    "sha512 blobs/empty/blob-patch-stream": 1,
    "sha512 blobs/empty/blob-post-put": 1,
    "sha512 blobs/emptyJSON/blob-get": 1,
    "sha512 blobs/emptyJSON/blob-head": 1,
    "sha512 blobs/emptyJSON/blob-patch-chunked": 1,
    "sha512 blobs/emptyJSON/blob-patch-stream": 1,
    "sha512 blobs/emptyJSON/blob-post-put": 1,
    "sha512 blobs/mount anonymous/blob-mount-anonymous": 1,
    "sha512 blobs/mount anonymous/blob-patch-chunked": 1,
    "sha512 blobs/mount anonymous/blob-patch-stream": 1,
    "sha512 blobs/mount anonymous/blob-post-put": 1,
    "sha512 blobs/mount missing/blob-mount": 1,
    "sha512 blobs/mount/blob-mount": 1,
    "sha512 blobs/mount/blob-patch-chunked": 1,
    "sha512 blobs/mount/blob-patch-stream": 1,
    "sha512 blobs/mount/blob-post-put": 1,
    "sha512 blobs/post+put/blob-post-put": 1,
    "sha512 blobs/range requests/blob-patch-chunked": 1,
    "sha512 blobs/range requests/blob-patch-stream": 1,
    "sha512 blobs/range requests/blob-post-put": 1,
    "sha512 blobs/stream/blob-patch-stream": 1,
    "sha512/head/blob-head": 6,
    "sha512/head/manifest-head-by-digest": 3,
    "sha512/pull/blob-get": 6,
    "sha512/pull/manifest-by-digest": 3,
    "sha512/push/blob-patch-chunked": 6,
    "sha512/push/blob-patch-stream": 6,
    "sha512/push/blob-post-put": 6,
    "sha512/push/manifest-by-digest": 3,
}


def _group(case: str) -> str | None:
    """Which known-unsupported group a failed case belongs to, if any."""
    data_set = case.split("/", 1)[0]  # a case name without the suite's prefix
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
    seen: dict[str, int] = {}
    cases = list(root.iter("testcase"))
    for case in cases:
        status = case.get("status", "")
        name = case.get("name", "").removeprefix("OCI Conformance Test/")
        if status in ("passed", "skipped"):
            counts[status] += 1
            continue
        # "failure", and "error" or anything else the suite reports: not a pass
        counts["failure"] += 1
        seen[name] = seen.get(name, 0) + 1
        group = _group(name)
        if group is None or status != "failure" or seen[name] > KNOWN_FAILURES.get(name, 0):
            unexpected.append(f"{name} ({status})")
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
