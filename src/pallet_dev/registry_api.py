"""The registry's HTTP API as `gc` reads and changes it: repositories, tags, manifests, deletes.

Every call goes through :func:`pallet_dev.probe.http_get` (httpx, no proxy, explicit
timeouts). Manifests are asked for with every type pallet-dev pushes or meets (OCI index,
Docker manifest list, OCI and Docker image manifests), so an index comes back as itself
and its digest is the one tags point at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from pallet_dev.errors import OperationFailed
from pallet_dev.probe import MANIFEST_TYPES, catalog, http_get

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
TAGS_PAGE_SIZE = 1000
TAGS_MAX_PAGES = 100
_HINT = "Check `pallet-dev health`; `pallet-dev up` starts the registry."


@dataclass(frozen=True)
class Manifest:
    """One manifest as the registry serves it: an image, or an index of images."""

    digest: str
    media_type: str
    config: str | None = None  # an image's config blob
    children: tuple[str, ...] = ()  # an index's manifests
    layers: tuple[tuple[str, int], ...] = ()  # an image's (digest, size) layers

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def parse_manifest(digest: str, content_type: str, body: bytes) -> Manifest:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OperationFailed(
            f"The registry served manifest {digest[:19]} as something that is not JSON.",
            hint=_HINT,
        )
    media_type = str(data.get("mediaType") or content_type.split(";", 1)[0].strip())
    config = data.get("config") if isinstance(data.get("config"), dict) else None
    return Manifest(
        digest=digest,
        media_type=media_type,
        config=str(config["digest"]) if config and config.get("digest") else None,
        children=tuple(
            str(item["digest"])
            for item in data.get("manifests") or []
            if isinstance(item, dict) and item.get("digest")
        ),
        layers=tuple(
            (str(item["digest"]), int(item.get("size") or 0))
            for item in data.get("layers") or []
            if isinstance(item, dict) and item.get("digest")
        ),
    )


def parse_created(body: bytes) -> datetime | None:
    """An image config's ``created`` time (None when absent, unreadable or the epoch).

    Reproducible builds set it to the Unix epoch (SOURCE_DATE_EPOCH=0): that says nothing
    about age, so it counts as unknown.
    """
    try:
        value = json.loads(body).get("created")
    except (ValueError, AttributeError):
        return None
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # RFC 3339 with nanoseconds: Python reads at most microseconds
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return None if created.timestamp() <= 0 else created


class RegistryApi:
    """One registry's API at ``base_url`` (``http://localhost:<port>``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return http_get(self.base_url + path, self.timeout, method=method, headers=headers)

    def _unexpected(self, status: int, what: str) -> OperationFailed:
        return OperationFailed(
            f"The registry at {self.base_url} answered {status} to {what}.",
            hint="See the registry's logs (`pallet-dev status` says where it runs).",
        )

    def repositories(self) -> list[str]:
        names = catalog(self.base_url, self.timeout)
        if names is None:
            raise OperationFailed(
                f"The registry at {self.base_url} did not list its repositories.", hint=_HINT
            )
        return names

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, every page ([] when it has none or is gone)."""
        path = f"/v2/{repository}/tags/list?n={TAGS_PAGE_SIZE}"
        tags: list[str] = []
        for _ in range(TAGS_MAX_PAGES):
            status, headers, body = self._call("GET", path)
            if status == 404:
                return tags
            if status != 200:
                raise self._unexpected(status, f"the tag list of {repository}")
            try:
                tags += [str(tag) for tag in json.loads(body).get("tags") or []]
            except (ValueError, AttributeError):
                raise self._unexpected(status, f"the tag list of {repository} (not JSON)") from None
            link = headers.get("link", "")
            if 'rel="next"' not in link or "<" not in link:
                break
            path = link.split("<", 1)[1].split(">", 1)[0]
        return tags

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest ``repository:reference`` (a tag or a digest); None when absent."""
        status, headers, body = self._call(
            "GET",
            f"/v2/{repository}/manifests/{quote(reference, safe=':')}",
            {"Accept": MANIFEST_TYPES},
        )
        if status == 404:
            return None
        if status != 200:
            raise self._unexpected(status, f"the manifest {repository}:{reference}")
        digest = headers.get("docker-content-digest") or reference
        return parse_manifest(digest, headers.get("content-type", ""), body)

    def created(self, repository: str, manifest: Manifest) -> datetime | None:
        """When the image was built (its config's ``created``); an index: its newest image."""
        if manifest.is_index:
            times = []
            for child in manifest.children:
                image = self.manifest(repository, child)
                if image is not None and not image.is_index:
                    times.append(self.created(repository, image))
            known = [time for time in times if time is not None]
            return max(known) if known else None
        if manifest.config is None:
            return None
        status, _, body = self._call("GET", f"/v2/{repository}/blobs/{manifest.config}")
        return parse_created(body) if status == 200 else None

    def delete(self, repository: str, digest: str) -> bool:
        """Delete a manifest (and with it every tag on it); False when it was gone already."""
        status, _, _ = self._call("DELETE", f"/v2/{repository}/manifests/{digest}")
        if status in (200, 202):
            return True
        if status == 404:
            return False
        if status == 405:
            raise OperationFailed(
                f"The registry at {self.base_url} refuses deletes (storage.delete is off).",
                hint="Turn deletes on (registry.deleteEnabled in the chart values, "
                "REGISTRY_STORAGE_DELETE_ENABLED=true), then run `pallet-dev up`.",
            )
        raise self._unexpected(status, f"deleting {repository}@{digest[:19]}")
