"""What `gc` deletes from a registry: per repository, the tags past the N newest or older
than a duration, never a digest an agent runs or a kept tag shares.

:func:`decide` is the pure selection; :func:`read_plan` asks the registry (through
:class:`~pallet_dev.registry_api.RegistryApi`) for every repository's tags, their digests
and creation times, and applies it. Tags are ordered by the image config's ``created``
time; the registry's API shows no push time, so tags without one (or with the epoch of a
reproducible build) count as older than every dated tag, ordered by name among themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pallet_dev.errors import UsageError

if TYPE_CHECKING:
    from pallet_dev.registry_api import RegistryApi

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` or a sum such as ``1d12h``."""
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise UsageError(
            f"--older-than {text!r:.40} is not a duration.",
            hint="Give a number and a unit, e.g. 30m, 12h or 7d (units: s, m, h, d, w).",
        )
    seconds = sum(int(n) * DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Policy:
    """Which tags go: past the ``keep`` newest, older than ``older_than``; with both, a
    tag goes only when both hold (``--keep`` is a floor). Neither: no tag goes."""

    now: datetime
    keep: int | None = None
    older_than: timedelta | None = None
    older_than_text: str = ""

    @property
    def deletes_tags(self) -> bool:
        return self.keep is not None or self.older_than is not None

    def to_dict(self) -> dict[str, Any]:
        return {"keep": self.keep, "older_than": self.older_than_text or None}


@dataclass(frozen=True)
class TagInfo:
    repository: str
    tag: str
    digest: str
    created: datetime | None
    children: tuple[str, ...] = ()  # an index's manifests


@dataclass(frozen=True)
class TagDecision:
    info: TagInfo
    delete: bool
    reason: str
    held: bool = False  # the policy would delete it; its digest must stay

    def to_dict(self) -> dict[str, Any]:
        created = self.info.created
        return {
            "tag": self.info.tag,
            "digest": self.info.digest,
            "created": created.isoformat().replace("+00:00", "Z") if created else None,
            "action": "delete" if self.delete else "keep",
            "reason": self.reason,
            "held": self.held,
        }


def newest_first(tags: Iterable[TagInfo]) -> list[TagInfo]:
    """By ``created``, newest first; undated tags last, by name (z before a)."""
    return sorted(
        tags,
        key=lambda info: (info.created is not None, info.created or _OLDEST, info.tag),
        reverse=True,
    )


def _policy_verdict(index: int, info: TagInfo, policy: Policy) -> tuple[bool, str]:
    """(goes, why) for the tag at ``index`` of the newest-first order, by the policy alone."""
    if not policy.deletes_tags:
        return False, "no --keep or --older-than given"
    if policy.keep is not None and index < policy.keep:
        return False, f"among the {policy.keep} newest"
    if policy.older_than is not None:
        if info.created is None:
            return False, "no creation time, so its age is unknown"
        if policy.now - info.created <= policy.older_than:
            return False, f"not older than {policy.older_than_text}"
    reasons = []
    if policy.keep is not None:
        reasons.append(f"not among the {policy.keep} newest")
    if policy.older_than is not None:
        reasons.append(f"older than {policy.older_than_text}")
    return True, " and ".join(reasons)


def decide(tags: Iterable[TagInfo], policy: Policy, protected: frozenset[str]) -> list[TagDecision]:
    """Each tag of one repository, newest first, kept or deleted and why.

    Deleting goes by digest (the registry's API deletes a manifest with all its tags), so
    a tag the policy would drop stays when its digest is ``protected`` (a running agent
    uses it), shared with a kept tag, or part of a kept index.
    """
    ordered = newest_first(tags)
    verdicts = [_policy_verdict(index, info, policy) for index, info in enumerate(ordered)]
    kept_by: dict[str, str] = {}
    kept_children: set[str] = set()
    for info, (goes, _) in zip(ordered, verdicts):
        if not goes:
            kept_by.setdefault(info.digest, info.tag)
            kept_children.update(info.children)
    decisions = []
    for info, (goes, why) in zip(ordered, verdicts):
        held = None
        if goes and info.digest in protected:
            held = "a running agent uses this digest"
        elif goes and info.digest in kept_by:
            held = f"same digest as the kept tag {kept_by[info.digest]}"
        elif goes and info.digest in kept_children:
            held = "part of a kept index"
        if held is None:
            decisions.append(TagDecision(info, goes, why))
        else:
            decisions.append(TagDecision(info, False, held, held=True))
    return decisions


@dataclass(frozen=True)
class Deletion:
    """One manifest to delete, and the tags that go with it."""

    repository: str
    digest: str
    tags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "digest": self.digest, "tags": list(self.tags)}


@dataclass(frozen=True)
class RepositoryPlan:
    name: str
    decisions: list[TagDecision]

    @property
    def deletions(self) -> list[Deletion]:
        tags: dict[str, list[str]] = {}
        for decision in self.decisions:
            if decision.delete:
                tags.setdefault(decision.info.digest, []).append(decision.info.tag)
        return [Deletion(self.name, digest, tuple(names)) for digest, names in tags.items()]

    @property
    def undated(self) -> int:
        return sum(1 for decision in self.decisions if decision.info.created is None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "order": "created" if not self.undated else "created, then tag name for undated tags",
            "tags": [decision.to_dict() for decision in self.decisions],
        }


@dataclass(frozen=True)
class GcPlan:
    """Everything `gc` would delete from one registry, and whether untagged manifests may go."""

    endpoint: str
    policy: Policy
    repositories: list[RepositoryPlan]
    protected: frozenset[str] = frozenset()
    # agents' digests no tag points at: `--delete-untagged` would remove them
    untagged_protected: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def deletions(self) -> list[Deletion]:
        return [deletion for repo in self.repositories for deletion in repo.deletions]

    @property
    def delete_untagged(self) -> bool:
        return not self.untagged_protected

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "policy": self.policy.to_dict(),
            "protected_digests": sorted(self.protected),
            "delete_untagged": self.delete_untagged,
            "repositories": [repo.to_dict() for repo in self.repositories],
            "delete": [deletion.to_dict() for deletion in self.deletions],
            "notes": list(self.notes),
        }


def read_plan(api: RegistryApi, policy: Policy, protected: frozenset[str]) -> GcPlan:
    """Ask the registry for every repository's tags and decide each."""
    repositories: list[RepositoryPlan] = []
    referenced: set[str] = set()  # every tagged digest and its index's manifests
    for name in api.repositories():
        infos: list[TagInfo] = []
        seen: dict[str, tuple[datetime | None, tuple[str, ...]]] = {}
        for tag in api.tags(name):
            manifest = api.manifest(name, tag)
            if manifest is None:  # deleted since the tag list was read
                continue
            if manifest.digest not in seen:
                seen[manifest.digest] = (api.created(name, manifest), manifest.children)
            created, children = seen[manifest.digest]
            infos.append(TagInfo(name, tag, manifest.digest, created, children))
            referenced.add(manifest.digest)
            referenced.update(children)
        repositories.append(RepositoryPlan(name, decide(infos, policy, protected)))
    names = [repo.name for repo in repositories]
    untagged = tuple(
        sorted(
            digest
            for digest in protected - referenced
            if any(api.manifest(name, digest) is not None for name in names)
        )
    )
    notes = []
    if untagged:
        notes.append(
            f"{len(untagged)} digest(s) a running agent uses carry no tag, so untagged "
            "manifests are kept this time (garbage collection runs without --delete-untagged)."
        )
    return GcPlan(api.base_url, policy, repositories, protected, untagged, notes)
