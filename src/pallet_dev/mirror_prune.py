"""What `gc --mirrors` removes from one pull-through cache's storage, on a folder.

A cache is CNCF distribution in proxy mode with the filesystem driver. Its storage root
holds ``docker/registry/v2/repositories/<name>/{_manifests,_layers}`` (links to blobs),
``docker/registry/v2/blobs/sha256/<2>/<digest>/data`` (the bytes), and
``scheduler-state.json``: the TTL entries (``{"<name>@<digest>": {"Key", "ExpiryData",
"EntryType"}}``) distribution adds when it fetches a blob or a manifest from the upstream
and acts on when they expire. The cache must be stopped while this runs: it keeps that
state and a blob-descriptor cache in memory and writes the state back every few seconds.

A repository's age is the newest modification time under its folder: distribution writes
its tag links each time a pull by tag reaches the upstream (it asks the upstream which
digest the tag names) and its manifest and layer links when it fetches them. A pull it
answers from its storage alone (by digest, or with the upstream down) writes nothing, so
"not fetched or re-checked within DURATION" is what the age means.

:func:`plan_prune` removes the repositories older than the limit (all of them without
one) and every blob no kept repository links; :func:`apply_prune` deletes them and drops
their scheduler entries, so the cache stays consistent: a removed repository is unknown,
and a later pull fetches it from the upstream again. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

V2 = Path("docker") / "registry" / "v2"
SCHEDULER_STATE = "scheduler-state.json"
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class CachedRepository:
    name: str
    last_fetched: datetime | None  # None: no file in it
    digests: frozenset[str]  # blobs it links (layers and manifest revisions)


@dataclass(frozen=True)
class PrunePlan:
    """What goes from one cache: repositories and blobs, and the bytes they take."""

    older_than: timedelta | None
    repositories: list[CachedRepository]  # every repository, oldest first
    removed: frozenset[str]  # names of the repositories that go
    blobs: dict[str, int | None] = field(default_factory=dict)  # digest → bytes (None: unknown)

    @property
    def bytes(self) -> int | None:
        sizes = list(self.blobs.values())
        return None if any(size is None for size in sizes) else sum(s or 0 for s in sizes)

    @property
    def empty(self) -> bool:
        return not self.removed and not self.blobs

    def to_dict(self) -> dict[str, Any]:
        return {
            "repositories": [
                {
                    "name": repo.name,
                    "last_fetched": _iso(repo.last_fetched),
                    "action": "delete" if repo.name in self.removed else "keep",
                }
                for repo in self.repositories
            ],
            "blobs": len(self.blobs),
            "bytes": self.bytes,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _links(folder: Path) -> set[str]:
    """Digests of the ``sha256/<hex>/link`` entries under ``folder``."""
    found: set[str] = set()
    for link in folder.glob("**/sha256/*/link"):
        found.add(f"sha256:{link.parent.name}")
    return found


def read_repositories(root: Path) -> list[CachedRepository]:
    """Every repository under the storage root (a folder holding ``_manifests``)."""
    base = root / V2 / "repositories"
    found: list[CachedRepository] = []
    if not base.is_dir():
        return found
    for folder, dirs, _ in os.walk(base):
        if "_manifests" not in dirs:
            continue
        repo = Path(folder)
        dirs[:] = []  # a repository's own folders hold no repository
        newest = 0.0
        for inner, _, files in os.walk(repo):
            for name in files:
                try:
                    newest = max(newest, os.lstat(os.path.join(inner, name)).st_mtime)
                except OSError:
                    continue
        last = datetime.fromtimestamp(newest, timezone.utc) if newest else None
        digests = _links(repo / "_layers") | _links(repo / "_manifests" / "revisions")
        found.append(CachedRepository(repo.relative_to(base).as_posix(), last, frozenset(digests)))
    return sorted(found, key=lambda repo: (repo.last_fetched or _NEVER, repo.name))


def blob_folder(root: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    return root / V2 / "blobs" / algorithm / hex_digest[:2] / hex_digest


def stored_blobs(root: Path) -> set[str]:
    base = root / V2 / "blobs" / "sha256"
    if not base.is_dir():
        return set()
    return {f"sha256:{folder.name}" for folder in base.glob("*/*") if folder.is_dir()}


def blob_size(root: Path, digest: str) -> int | None:
    try:
        return (blob_folder(root, digest) / "data").stat().st_size
    except OSError:
        return None


def plan_prune(root: Path, *, now: datetime, older_than: timedelta | None) -> PrunePlan:
    """Repositories not fetched within ``older_than`` (all without it), and the blobs no
    kept repository links. Without a ``blobs`` folder under ``root`` (a copy of the
    repositories alone) the blobs are those the removed repositories link, sizes unknown."""
    repositories = read_repositories(root)
    removed = {
        repo.name
        for repo in repositories
        if older_than is None or repo.last_fetched is None or now - repo.last_fetched > older_than
    }
    kept_links: set[str] = set()
    gone_links: set[str] = set()
    for repo in repositories:
        (gone_links if repo.name in removed else kept_links).update(repo.digests)
    if (root / V2 / "blobs").is_dir():
        going = stored_blobs(root) - kept_links
    else:
        going = gone_links - kept_links
    sizes = {digest: blob_size(root, digest) for digest in sorted(going)}
    return PrunePlan(older_than, repositories, frozenset(removed), sizes)


def _remove(path: Path) -> int:
    """Delete a file or folder; the bytes of the files it held."""
    freed = 0
    if path.is_dir() and not path.is_symlink():
        for folder, _, files in os.walk(path):
            for name in files:
                try:
                    freed += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    continue
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        freed += path.lstat().st_size
        path.unlink(missing_ok=True)
    return freed


def _prune_empty_parents(path: Path, stop: Path) -> None:
    parent = path.parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            return
        parent = parent.parent


def apply_prune(root: Path, plan: PrunePlan) -> int:
    """Delete what ``plan`` lists under the storage root; the bytes freed."""
    if plan.older_than is None:
        return empty_storage(root)
    freed = 0
    repositories = root / V2 / "repositories"
    for name in sorted(plan.removed):
        folder = repositories / name
        freed += _remove(folder)
        _prune_empty_parents(folder, repositories)
    blobs = root / V2 / "blobs"
    for digest in plan.blobs:
        folder = blob_folder(root, digest)
        freed += _remove(folder)
        _prune_empty_parents(folder, blobs)
    _rewrite_scheduler_state(root, plan)
    return freed


def empty_storage(root: Path) -> int:
    """Everything under the storage root goes (the root itself stays: the cache's mount)."""
    freed = 0
    if root.is_dir():
        for child in root.iterdir():
            freed += _remove(child)
    return freed


def _rewrite_scheduler_state(root: Path, plan: PrunePlan) -> None:
    """Drop the TTL entries of removed repositories and blobs, so distribution does not
    act on them later (and its state names only what the storage holds)."""
    path = root / SCHEDULER_STATE
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(entries, dict):
        return
    kept = {}
    for key, entry in entries.items():
        name, _, digest = str(key).partition("@")
        if name in plan.removed or digest in plan.blobs:
            continue
        kept[key] = entry
    if len(kept) == len(entries):
        return
    partial = path.with_name(f"{SCHEDULER_STATE}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(kept), encoding="utf-8")
    os.replace(partial, path)
