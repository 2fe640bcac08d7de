"""What `gc --mirrors` removes from a pull-through cache's storage (mirror_prune.py), on real
folders laid out as distribution's filesystem driver writes them."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pallet_dev.mirror_prune import (
    SCHEDULER_STATE,
    V2,
    PrunePlan,
    apply_prune,
    blob_folder,
    blob_size,
    empty_storage,
    plan_prune,
    read_repositories,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class CacheStorage:
    """A cache's storage root: repositories with their links, blobs, the scheduler state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: dict[str, dict[str, object]] = {}

    def blob(self, data: bytes) -> str:
        digest = digest_of(data)
        folder = blob_folder(self.root, digest)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").write_bytes(data)
        return digest

    def repository(
        self, name: str, *, fetched: datetime, layers: list[bytes], manifest: bytes
    ) -> tuple[str, list[str]]:
        """A repository pulled by tag "1" at ``fetched``: its manifest and layer links."""
        repo = self.root / V2 / "repositories" / name
        layer_digests = [self.blob(data) for data in layers]
        manifest_digest = self.blob(manifest)
        links = [repo / "_manifests" / "tags" / "1" / "current" / "link"]
        links.append(repo / "_manifests" / "revisions" / "sha256" / manifest_digest[7:] / "link")
        links += [repo / "_layers" / "sha256" / d[7:] / "link" for d in layer_digests]
        for link, digest in zip(links, [manifest_digest, manifest_digest, *layer_digests]):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.write_text(digest)
            os.utime(link, (fetched.timestamp(), fetched.timestamp()))
        for digest in [manifest_digest, *layer_digests]:
            self.entries[f"{name}@{digest}"] = {"Key": f"{name}@{digest}", "EntryType": 0}
        return manifest_digest, layer_digests

    def write_scheduler_state(self) -> None:
        (self.root / SCHEDULER_STATE).write_text(json.dumps(self.entries), encoding="utf-8")

    def scheduler_state(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.root / SCHEDULER_STATE).read_text())
        return loaded


def filled(tmp_path: Path) -> tuple[CacheStorage, dict[str, list[str]]]:
    """team/old (fetched 3 days ago), team/new and library/busybox (an hour ago); team/old
    and team/new share a layer; one blob no repository links (an interrupted fetch)."""
    storage = CacheStorage(tmp_path / "cache")
    shared = b"shared-layer" * 100
    old = storage.repository(
        "team/old", fetched=NOW - 3 * DAY, layers=[b"old-layer" * 1000, shared], manifest=b"m-old"
    )
    new = storage.repository(
        "team/new", fetched=NOW - timedelta(hours=1), layers=[shared], manifest=b"m-new"
    )
    busybox = storage.repository(
        "library/busybox", fetched=NOW - timedelta(hours=1), layers=[b"bb"], manifest=b"m-bb"
    )
    orphan = storage.blob(b"orphan")
    storage.write_scheduler_state()
    digests = {
        "team/old": [old[0], *old[1]],
        "team/new": [new[0], *new[1]],
        "library/busybox": [busybox[0], *busybox[1]],
        "orphan": [orphan],
    }
    return storage, digests


def test_repositories_are_read_with_their_age_and_links_oldest_first(tmp_path: Path) -> None:
    storage, digests = filled(tmp_path)
    repos = read_repositories(storage.root)
    assert [repo.name for repo in repos] == ["team/old", "library/busybox", "team/new"]
    old = repos[0]
    assert old.last_fetched == NOW - 3 * DAY
    assert old.digests == frozenset(digests["team/old"])  # its manifest and both layers


def test_without_older_than_every_repository_and_every_blob_goes(tmp_path: Path) -> None:
    storage, digests = filled(tmp_path)
    plan = plan_prune(storage.root, now=NOW, older_than=None)
    assert plan.removed == {"team/old", "team/new", "library/busybox"}
    every_blob = {d for found in digests.values() for d in found}
    assert set(plan.blobs) == every_blob  # the orphan too
    assert plan.bytes == sum(blob_size(storage.root, d) or 0 for d in every_blob)
    freed = apply_prune(storage.root, plan)
    assert storage.root.is_dir() and list(storage.root.iterdir()) == []  # the mount stays
    assert freed >= plan.bytes  # the blobs, plus the links and the scheduler state


def test_older_than_removes_old_repositories_and_the_blobs_only_they_link(tmp_path: Path) -> None:
    storage, digests = filled(tmp_path)
    plan = plan_prune(storage.root, now=NOW, older_than=DAY)
    assert plan.removed == {"team/old"}
    old_manifest, old_layer, shared = digests["team/old"]
    # the shared layer stays: team/new, which stays, links it
    assert set(plan.blobs) == {old_manifest, old_layer, digests["orphan"][0]}
    assert plan.to_dict() == {
        "repositories": [
            {"name": "team/old", "last_fetched": "2026-12-03T12:00:00Z", "action": "delete"},
            {"name": "library/busybox", "last_fetched": "2026-12-06T11:00:00Z", "action": "keep"},
            {"name": "team/new", "last_fetched": "2026-12-06T11:00:00Z", "action": "keep"},
        ],
        "blobs": 3,
        "bytes": len(b"old-layer" * 1000) + len(b"m-old") + len(b"orphan"),
    }


def test_applying_older_than_deletes_only_what_the_plan_lists(tmp_path: Path) -> None:
    storage, digests = filled(tmp_path)
    plan = plan_prune(storage.root, now=NOW, older_than=DAY)
    freed = apply_prune(storage.root, plan)
    repositories = storage.root / V2 / "repositories"
    assert not (repositories / "team" / "old").exists()
    assert (repositories / "team" / "new" / "_manifests").is_dir()  # its parent stays
    assert (repositories / "library" / "busybox").is_dir()
    gone = [digests["team/old"][0], digests["team/old"][1], digests["orphan"][0]]
    for digest in gone:
        assert not blob_folder(storage.root, digest).exists()
    for digest in [digests["team/old"][2], *digests["team/new"], *digests["library/busybox"]]:
        assert (blob_folder(storage.root, digest) / "data").is_file()
    assert freed >= (plan.bytes or 0) > 0
    # the scheduler forgets the removed repository's entries, keeps every other
    state = storage.scheduler_state()
    assert not any(key.startswith("team/old@") for key in state)
    assert set(state) == {k for k in storage.entries if not k.startswith("team/old@")}
    # read again: the rest is as it was, and nothing more is old
    again = plan_prune(storage.root, now=NOW, older_than=DAY)
    assert [repo.name for repo in again.repositories] == ["library/busybox", "team/new"]
    assert again.empty and again.bytes == 0


def test_empty_parent_folders_of_removed_repositories_and_blobs_go(tmp_path: Path) -> None:
    storage = CacheStorage(tmp_path / "cache")
    storage.repository("solo/app", fetched=NOW - 2 * DAY, layers=[b"x"], manifest=b"m")
    storage.repository("kept", fetched=NOW, layers=[b"y"], manifest=b"n")
    plan = plan_prune(storage.root, now=NOW, older_than=DAY)
    apply_prune(storage.root, plan)
    repositories = storage.root / V2 / "repositories"
    assert sorted(p.name for p in repositories.iterdir()) == ["kept"]  # "solo" went too
    for digest in plan.blobs:
        assert not blob_folder(storage.root, digest).parent.exists()  # its two-hex folder


def test_an_empty_or_missing_cache_has_nothing_to_delete(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path):
        for older_than in (None, DAY):
            plan = plan_prune(root, now=NOW, older_than=older_than)
            assert plan.empty and plan.repositories == [] and plan.bytes == 0
            assert plan.to_dict() == {"repositories": [], "blobs": 0, "bytes": 0}
    assert empty_storage(tmp_path / "missing") == 0
    assert apply_prune(tmp_path / "missing", PrunePlan(DAY, [], frozenset())) == 0
    assert not (tmp_path / "missing").exists()


def test_a_repository_without_files_counts_as_never_fetched(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (root / V2 / "repositories" / "half" / "_manifests").mkdir(parents=True)
    plan = plan_prune(root, now=NOW, older_than=timedelta(weeks=52))
    [repo] = plan.repositories
    assert repo.last_fetched is None and repo.digests == frozenset()
    assert plan.removed == {"half"} and plan.blobs == {}
    assert plan.to_dict()["repositories"][0]["last_fetched"] is None
    apply_prune(root, plan)
    assert list((root / V2 / "repositories").iterdir()) == []


def test_folders_without_manifests_are_no_repositories(tmp_path: Path) -> None:
    storage, _ = filled(tmp_path)
    (storage.root / V2 / "repositories" / "team" / "stray").mkdir()
    (storage.root / V2 / "repositories" / "_uploads-only" / "_uploads").mkdir(parents=True)
    names = {repo.name for repo in read_repositories(storage.root)}
    assert names == {"team/old", "team/new", "library/busybox"}


def test_without_a_blobs_folder_the_removed_repositories_links_count(tmp_path: Path) -> None:
    """A copy of the repositories alone (the Docker backend's first look): the blobs are
    those the removed repositories link and no kept one does; their sizes are unknown."""
    storage, digests = filled(tmp_path)
    links_only = tmp_path / "links"
    (links_only / V2).mkdir(parents=True)
    os.rename(storage.root / V2 / "repositories", links_only / V2 / "repositories")
    plan = plan_prune(links_only, now=NOW, older_than=DAY)
    assert set(plan.blobs) == set(digests["team/old"][:2])
    assert plan.bytes is None and not plan.empty
    assert plan.to_dict()["bytes"] is None


def test_a_missing_blob_has_no_size_and_the_total_is_unknown(tmp_path: Path) -> None:
    storage, digests = filled(tmp_path)
    (blob_folder(storage.root, digests["team/old"][1]) / "data").unlink()
    plan = plan_prune(storage.root, now=NOW, older_than=DAY)
    assert plan.blobs[digests["team/old"][1]] is None and plan.bytes is None
    apply_prune(storage.root, plan)  # the blob's folder goes all the same
    assert not blob_folder(storage.root, digests["team/old"][1]).exists()


def test_a_missing_or_unreadable_scheduler_state_is_left_alone(tmp_path: Path) -> None:
    storage, _ = filled(tmp_path)
    state = storage.root / SCHEDULER_STATE
    state.write_text("{not json")
    apply_prune(storage.root, plan_prune(storage.root, now=NOW, older_than=DAY))
    assert state.read_text() == "{not json"
    state.write_text("[]")  # JSON, but not the entries' object
    storage.repository("team/older", fetched=NOW - 5 * DAY, layers=[b"z"], manifest=b"o")
    apply_prune(storage.root, plan_prune(storage.root, now=NOW, older_than=DAY))
    assert state.read_text() == "[]"
    state.unlink()
    storage.repository("team/oldest", fetched=NOW - 9 * DAY, layers=[b"w"], manifest=b"p")
    plan = plan_prune(storage.root, now=NOW, older_than=DAY)
    assert plan.removed == {"team/oldest"}
    apply_prune(storage.root, plan)
    assert not state.exists() and not (storage.root / V2 / "repositories" / "team/oldest").exists()


def test_a_scheduler_state_naming_nothing_removed_is_not_rewritten(tmp_path: Path) -> None:
    storage = CacheStorage(tmp_path / "cache")
    storage.repository("team/old", fetched=NOW - 2 * DAY, layers=[b"a"], manifest=b"m")
    (storage.root / SCHEDULER_STATE).write_text('{"other@sha256:00": {"EntryType": 1}}')
    before = (storage.root / SCHEDULER_STATE).stat()
    apply_prune(storage.root, plan_prune(storage.root, now=NOW, older_than=DAY))
    after = (storage.root / SCHEDULER_STATE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list(storage.root.glob(f"{SCHEDULER_STATE}.*")) == []  # no partial file left


def test_a_symlink_in_the_storage_is_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    root = tmp_path / "cache"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    empty_storage(root)
    assert list(root.iterdir()) == [] and (outside / "keep.txt").read_text() == "mine"
