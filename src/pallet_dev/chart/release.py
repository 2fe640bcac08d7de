"""How pallet-dev tells an unchanged Helm release from one to upgrade (both charts).

pallet-dev writes a fingerprint of the chart files and the computed values into each
revision's description (``--description``), so one `helm history` call tells "same chart,
same values, deployed by pallet-dev" from anything else (an upgrade by hand says "Upgrade
complete", a rollback "Rollback to N").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pallet_dev.tools.helm import HelmRevision, HelmVersion

DESCRIPTION_PREFIX = "pallet-dev fingerprint"
# Helm 4 is the current major; `up --dry-run` runs no subprocess, so it shows Helm 4's flags.
PLAN_HELM_VERSION = HelmVersion("v4", 4, 0)


def chart_fingerprint(chart_dir: Path, values: Mapping[str, Any]) -> str:
    """Chart files + values: equal fingerprints mean `helm upgrade` would change nothing."""
    digest = hashlib.sha256()
    for path in sorted(p for p in chart_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(chart_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(json.dumps(values, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def description_for(fingerprint: str) -> str:
    return f"{DESCRIPTION_PREFIX} {fingerprint}"


def same_release(latest: HelmRevision | None, chart: str, description: str) -> bool:
    """The deployed release runs ``chart`` (name-version) with this fingerprint."""
    return (
        latest is not None
        and latest.deployed
        and latest.chart == chart
        and latest.description == description
    )
