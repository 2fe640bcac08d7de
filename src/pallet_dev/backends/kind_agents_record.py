"""The values the agents' Deployments run after `kubectl set image` moved them past the release.

A Helm upgrade of the agents release costs about two seconds more than `kubectl set image`
+ `kubectl rollout status`, the steps a person runs by hand for a new image. So when the
only change is agents' images, the kind backend sets them on the Deployments (`up` and
`dev` alike) and keeps here the values the Deployments now run, with the release revision
they were applied on top of. While that revision is still the release's latest (same chart,
same description), the next `up` compares the configured values with these: equal means
nothing to deploy, images alone mean set them again; anything else, or another revision
(someone ran Helm), takes the Helm upgrade, which brings the release's values up to date
(no pod changes for the images already set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet_dev.tools.helm import HelmRevision


@dataclass(frozen=True)
class AppliedValues:
    revision: int  # the release revision the values were applied on top of
    chart: str  # NAME-VERSION of that revision
    description: str  # its description (the fingerprint of chart and values it was given)
    values: dict[str, Any]  # the chart values the Deployments run now

    def holds(self, latest: HelmRevision | None) -> bool:
        """The release is still at the revision these values were applied on top of."""
        return (
            latest is not None
            and latest.deployed
            and latest.revision == self.revision
            and latest.chart == self.chart
            and latest.description == self.description
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "revision": self.revision,
                "chart": self.chart,
                "description": self.description,
                "values": self.values,
            },
            indent=2,
            sort_keys=True,
        )


def read(path: Path) -> AppliedValues | None:
    """The record, or None when there is none or it cannot be used (then Helm decides)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return AppliedValues(
            int(data["revision"]), str(data["chart"]), str(data["description"]), data["values"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def image_changes(applied: dict[str, Any], wanted: dict[str, Any]) -> list[str] | None:
    """The agents whose image alone differs between two chart values ([]: none), in
    order; None when anything else differs (an agent added, removed, moved or changed)."""
    before, after = applied.get("agents"), wanted.get("agents")
    if set(applied) != set(wanted) or not isinstance(before, list) or not isinstance(after, list):
        return None
    if len(before) != len(after):
        return None
    moved: list[str] = []
    for old, new in zip(before, after):
        if not isinstance(old, dict) or not isinstance(new, dict):
            return None
        if {k: v for k, v in old.items() if k != "image"} != {
            k: v for k, v in new.items() if k != "image"
        }:
            return None
        if old.get("image") != new.get("image"):
            moved.append(str(new["name"]))
    return moved
