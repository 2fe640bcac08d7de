"""`pallet-dev gc [--keep N] [--older-than DURATION] [--dry-run] [--json]`: free registry disk.

Per repository it deletes the tags past the N newest, or older than DURATION
(:mod:`pallet_dev.registry_gc` decides; a digest a running agent uses or a kept tag shares
stays), then runs the registry's own garbage collection while no push can race it (the
backend's :meth:`~pallet_dev.backends.base.Backend.collect_garbage` stops the registry
meanwhile and says how), and reports the bytes freed on disk. ``--dry-run`` reads the
registry and prints the same plan with the exact commands; it changes nothing.

The pull-through caches (mirrors.py) are never touched unless ``--mirrors`` is given;
then each is cleaned after the registry (commands/gc_mirrors.py): emptied, or with
``--older-than`` only what it has not fetched within DURATION, each cache stopped meanwhile.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pallet_dev.backends.base import Backend
from pallet_dev.backends.table import active_backend_name, make_backend
from pallet_dev.context import AppContext
from pallet_dev.errors import PalletError, PrerequisiteError, UsageError
from pallet_dev.output import megabytes
from pallet_dev.registry_gc import GcPlan, Policy, parse_duration, read_plan

if TYPE_CHECKING:
    from pallet_dev.backends.base import MirrorGc
    from pallet_dev.output import Steps
    from pallet_dev.settings import Settings
    from pallet_dev.registry_api import RegistryApi

# the whole collection, registry stopped included, may take this long
GC_TIMEOUT = 600.0


@dataclass(frozen=True)
class GcTarget:
    """One registry `gc` cleans: its name in the output and where its API answers."""

    name: str
    endpoint: str


def agent_digests(ctx: AppContext, config: Settings, backend: Backend) -> frozenset[str]:
    """Digests of the agents: as `up` recorded them, and as they run now."""
    state = ctx.active(config.name) or {}
    recorded = (state.get("agents") or {}).get("agents") or []
    found = [item.get("digest") for item in recorded if isinstance(item, dict)]
    if config.agents or recorded:
        try:
            found += [agent.get("digest") for agent in backend.agents_status()]
        except PalletError:
            pass  # nothing to ask (no cluster, no daemon): the recorded digests stand
    return frozenset(d for d in found if isinstance(d, str) and d.startswith("sha256:"))


def _require_answer(endpoint: str) -> None:
    from pallet_dev.probe import probe, registry_target

    answer = probe(registry_target(endpoint), timeout=2.0)
    if not answer.healthy:
        raise PrerequisiteError(
            f"The registry at {endpoint} does not answer ({answer.error or answer.status_code}).",
            hint="Start the environment with `pallet-dev up`; `pallet-dev health` says more.",
        )
    if answer.detail == "auth on":
        raise PrerequisiteError(
            f"The registry at {endpoint} asks for a login, which `gc` does not do.",
            hint="Turn the registry's auth off for `gc`, or delete tags with your own client.",
        )


def run_gc(
    ctx: AppContext,
    *,
    keep: int | None,
    older_than: str | None,
    dry_run: bool,
    as_json: bool,
    mirrors: bool = False,
) -> int:
    if keep is not None and keep < 0:
        raise UsageError("--keep must be 0 or more.", hint="For example `--keep 3`.")
    policy = Policy(
        now=datetime.now(timezone.utc),
        keep=keep,
        older_than=parse_duration(older_than) if older_than is not None else None,
        older_than_text=older_than or "",
    )
    config = ctx.load_settings()
    active = ctx.active(config.name) or {}
    backend = make_backend(active_backend_name(config, active), config, ctx.runner, ctx.paths)
    target = GcTarget("registry", str(active.get("endpoint") or config.registry_url))
    _require_answer(target.endpoint)
    steps = ctx.steps(quiet=as_json)
    caches: list[MirrorGc] = []
    # one hold of the environment's lock over the registry and its caches (a dry run
    # changes nothing and takes none)
    with nullcontext() if dry_run else ctx.env_lock(config.name):
        if dry_run:
            plan, report = _plan_registry(ctx, config, backend, target, policy)
        else:
            plan, report = _clean_registry(ctx, config, backend, target, policy, steps)
        if mirrors:
            from pallet_dev.commands.gc_mirrors import gc_mirrors

            caches = gc_mirrors(
                backend,
                older_than=policy.older_than,
                now=policy.now,
                dry_run=dry_run,
                steps=steps,
            )
    cache_reports: list[dict[str, Any]] = []
    document = {"dry_run": dry_run, "backend": backend.name, "registries": [report]}
    if mirrors:
        cache_reports = [cache.to_dict() for cache in caches]
        document["mirrors"] = cache_reports
        for cache in caches:
            if cache.method:
                ctx.log.write("gc", mirror=cache.upstream, bytes_freed=cache.bytes_freed)
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        text = render_gc(document, plan)
        if mirrors:
            from pallet_dev.commands.gc_mirrors import render_mirrors

            lines = render_mirrors(
                cache_reports, dry_run=dry_run, older_than=policy.older_than_text
            )
            text = "\n".join([text, *lines])
        print(text)
    return 0


def _plan_registry(
    ctx: AppContext, config: Settings, backend: Backend, target: GcTarget, policy: Policy
) -> tuple[GcPlan, dict[str, Any]]:
    from pallet_dev.registry_api import RegistryApi

    plan = read_plan(RegistryApi(target.endpoint), policy, agent_digests(ctx, config, backend))
    collection = backend.plan_collect_garbage(delete_untagged=plan.delete_untagged)
    report = {"name": target.name, **plan.to_dict()}
    report["collection"] = {"steps": [step.to_dict() for step in collection]}
    return plan, report


def _clean_registry(
    ctx: AppContext,
    config: Settings,
    backend: Backend,
    target: GcTarget,
    policy: Policy,
    steps: Steps,
) -> tuple[GcPlan, dict[str, Any]]:
    """Delete the planned tags, collect the garbage, measure the disk before and after."""
    from pallet_dev.registry_api import RegistryApi

    api = RegistryApi(target.endpoint)
    plan = read_plan(api, policy, agent_digests(ctx, config, backend))
    before = backend.registry_data_size()
    deleted = _delete(api, plan, steps)
    result = backend.collect_garbage(
        delete_untagged=plan.delete_untagged, steps=steps, timeout=GC_TIMEOUT
    )
    after = backend.registry_data_size()
    freed = max(0, before - after) if before is not None and after is not None else None
    ctx.log.write("gc", registry=target.name, deleted=len(deleted), bytes_freed=freed)
    report = {"name": target.name, **plan.to_dict(), "deleted": deleted}
    report.update(
        collection=result.to_dict(), bytes_before=before, bytes_after=after, bytes_freed=freed
    )
    return plan, report


def _delete(api: RegistryApi, plan: GcPlan, steps: Steps) -> list[dict[str, Any]]:
    """Delete every planned manifest by digest; what was deleted (gone already: left out)."""
    deleted: list[dict[str, Any]] = []
    deletions = plan.deletions
    if not deletions:
        return deleted
    tags = sum(len(deletion.tags) for deletion in deletions)
    with steps.step(f"Deleting {len(deletions)} manifest(s) with {tags} tag(s)"):
        for deletion in deletions:
            if api.delete(deletion.repository, deletion.digest):
                deleted.append(deletion.to_dict())
    return deleted


def render_gc(document: dict[str, Any], plan: GcPlan) -> str:
    report = document["registries"][0]
    verb = "would delete" if document["dry_run"] else "deleted"
    lines = [f"Registry {plan.endpoint} ({document['backend']} backend)"]
    if not plan.repositories:
        lines.append("  no repositories")
    for repo in plan.repositories:
        going = [d for d in repo.decisions if d.delete]
        lines.append(
            f"  {repo.name}: {len(repo.decisions)} tag(s), {verb} {len(going)}, "
            f"keeping {len(repo.decisions) - len(going)}"
        )
        for decision in repo.decisions:
            info = decision.info
            if decision.delete or decision.held:
                mark = "-" if decision.delete else "="
                lines.append(f"    {mark} {info.tag}  {info.digest[:19]}  {decision.reason}")
    lines += [f"  note: {note}" for note in plan.notes]
    untagged = "with" if plan.delete_untagged else "without"
    if document["dry_run"]:
        lines.append(f"Garbage collection ({untagged} --delete-untagged) would run:")
        for step in report["collection"]["steps"]:
            command = " ".join(step["argv"]) if step["argv"] else step.get("detail", "")
            lines.append(f"  {step['name']}: {command}")
        return "\n".join(lines)
    collection = report["collection"]
    lines.append(
        f"Garbage collection ({untagged} --delete-untagged): {collection['method']} "
        f"({collection['seconds_stopped']:.1f} s)."
    )
    if collection["summary"]:
        lines.append(f"  {collection['summary']}")
    lines.append(
        f"Freed {megabytes(report['bytes_freed'])} "
        f"(data {megabytes(report['bytes_before'])} before, {megabytes(report['bytes_after'])} "
        "after)."
    )
    return "\n".join(lines)
