"""The real `gc` scenario both backends run: changing tags pushed, then checked after `gc`
through the registry's API (kept digests and their layers answer, removed ones 404)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pallet_dev.probe import MANIFEST_TYPES, http_get


def status_of(url: str) -> int:
    return http_get(url, 10.0, method="HEAD", headers={"Accept": MANIFEST_TYPES})[0]


def layers_of(base: str, repository: str, digest: str) -> list[dict[str, Any]]:
    status, _, body = http_get(
        f"{base}/v2/{repository}/manifests/{digest}", 10.0, headers={"Accept": MANIFEST_TYPES}
    )
    assert status == 200, (digest, status)
    return list(json.loads(body)["layers"])


def push_changing_tags(
    repository: str, count: int, build: Callable[[str, str], None], push: Callable[[str], str]
) -> tuple[list[str], list[str]]:
    """``count`` tags of ``repository``, each a new image with a layer of its own, pushed
    in order; (tags, digests)."""
    tags = [f"{repository}:v{i:02d}" for i in range(count)]
    digests = []
    for index, tag in enumerate(tags):
        build(tag, f"payload {index} " * 50)
        digests.append(push(tag))
    return tags, digests


def assert_collected(
    base: str,
    repository: str,
    layers: dict[str, list[dict[str, Any]]],
    kept: set[str],
    report: dict[str, Any],
) -> None:
    """Kept digests and their layers answer, removed ones 404, and at least the removed
    layers' bytes were freed (every layer here belongs to one tag only)."""
    for digest, its_layers in layers.items():
        answer = status_of(f"{base}/v2/{repository}/manifests/{digest}")
        assert answer == (200 if digest in kept else 404), (digest, answer)
        for layer in its_layers:
            blob = status_of(f"{base}/v2/{repository}/blobs/{layer['digest']}")
            assert blob == (200 if digest in kept else 404), (digest, layer, blob)
    removed = sum(
        layer["size"] for digest, its in layers.items() if digest not in kept for layer in its
    )
    assert report["bytes_freed"] >= removed, (report["bytes_freed"], removed, report)
