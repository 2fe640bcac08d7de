"""`pallet-dev status [--json]`: what exists, where the registry answers, what it holds."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from pallet_dev.backends.base import BackendStatus
from pallet_dev.backends.table import backends_for, make_backend
from pallet_dev.context import AppContext
from pallet_dev.errors import PalletError, PrerequisiteError
from pallet_dev.output import megabytes, use_color
from pallet_dev.probe import catalog, probe, registry_target

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StatusReport:
    document: dict[str, Any]  # `status --json` (docs/health-and-status.md)
    backends: dict[str, BackendStatus]


def collect_status(ctx: AppContext) -> StatusReport:
    config = ctx.load_settings()
    active = ctx.active(config.name) or {}
    statuses: dict[str, BackendStatus] = {}
    for entry in backends_for(config):
        if not ctx.runner.has(entry.owner_tool):
            statuses[entry.name] = BackendStatus.unavailable(f"{entry.owner_tool} is not installed")
            continue
        try:
            statuses[entry.name] = entry.load(config, ctx.runner, ctx.paths).status()
        except PrerequisiteError as exc:
            statuses[entry.name] = BackendStatus.unavailable(str(exc))
    existing = [name for name, status in statuses.items() if status.exists]
    active_backend = active.get("backend") if active.get("backend") in existing else None
    if active_backend is None and existing:
        active_backend = existing[0]
    endpoint = active.get("endpoint") or config.registry_url
    reg = probe(registry_target(endpoint), timeout=1.0)
    repositories = catalog(endpoint) if reg.healthy and reg.status_code == 200 else None
    running = statuses.get(active_backend or "")
    image, version = _image_and_version(config.registry.image, running)
    agents: list[dict[str, Any]] | None = None
    if active_backend and (config.agents or active.get("agents")):
        try:
            chosen = make_backend(active_backend, config, ctx.runner, ctx.paths)
            agents = chosen.agents_status()
        except PalletError as exc:
            agents = [{"name": "-", "error": exc.message}]
    document = {
        "schema_version": SCHEMA_VERSION,
        "environment": config.name,
        "up": bool(existing),
        "backend": active_backend,
        "endpoint": endpoint,
        "registry": {
            "healthy": reg.healthy,
            "status_code": reg.status_code,
            "error": reg.error,
            "image": image,
            "version": version,
            "repository_count": len(repositories) if repositories is not None else None,
            "repositories": repositories,
        },
        "data": _data(statuses, active_backend),
        "backends": {name: status.report for name, status in statuses.items()},
    }
    if agents is not None:
        document["agents"] = agents
    if running is not None and running.mirrors is not None:
        document["mirrors"] = running.mirrors
    return StatusReport(document, statuses)


_VERSION_TAG = re.compile(r":v?(\d+(?:\.\d+)*)(?:@|$)")


def _image_and_version(configured: str, status: BackendStatus | None) -> tuple[str, str | None]:
    """The registry image that runs (else the configured one) and its version where known."""
    image = (status.image if status else None) or configured
    if status is not None and status.version:
        return image, status.version
    match = _VERSION_TAG.search(image)
    return image, match.group(1) if match else None


def _data(statuses: dict[str, BackendStatus], active: str | None) -> dict[str, Any] | None:
    """Where the registry's data lives and its size; also when only the data is left."""
    for name in [active, *statuses] if active else list(statuses):
        status = statuses.get(name or "")
        if status is not None and status.data is not None:
            return {"location": status.data.location, "size_bytes": status.data.size_bytes}
    return None


def render_status(status: StatusReport) -> str:
    doc = status.document
    lines = [f"Environment: {doc['environment']}"]
    if not doc["up"]:
        lines.append("Nothing is up. Run `pallet-dev up` to start it.")
    else:
        lines.append(f"Backend:     {doc['backend']}")
    registry = doc["registry"]
    answer = (
        "answering"
        if registry["healthy"]
        else f"not answering ({registry['error'] or registry['status_code']})"
    )
    lines.append(f"Registry:    {doc['endpoint']} {answer}")
    version = f" (version {registry['version']})" if registry.get("version") else ""
    lines.append(f"Image:       {registry['image']}{version}")
    if registry["repository_count"] is not None:
        lines.append(f"Repositories: {registry['repository_count']}")
    data = doc.get("data")
    if data:
        lines.append(f"Data:        {data['location']} ({megabytes(data['size_bytes'])})")
    for agent in doc.get("agents") or []:
        if agent.get("error"):
            lines.append(f"Agents:      {agent['error']}")
            continue
        ready = agent.get("ready", 0)
        where = agent.get("endpoint") or "-"
        lines.append(
            f"Agent:       {agent['name']} {ready}/{agent.get('desired')} ready, "
            f"{agent.get('restarts', 0)} restarts, {agent.get('digest') or agent.get('image')}"
            f" ({where})"
        )
    lines += [f"Cache:       {mirror_line(mirror)}" for mirror in doc.get("mirrors") or []]
    for name, report in doc["backends"].items():
        if report.get("error"):
            lines.append(f"[{name}] {report['error']}")
            continue
        if not report.get("exists"):
            kept = status.backends[name].data
            extra = f" ({kept.description} kept)" if kept else ""
            lines.append(f"[{name}] nothing running{extra}")
            continue
        lines.append(f"[{name}]")
        for key, value in report.items():
            if key == "exists":
                continue
            lines.append(f"  {key}: {_short(value)}")
    return "\n".join(lines)


def mirror_line(mirror: dict[str, Any]) -> str:
    """One pull-through cache: upstream, endpoint and state, entries, bytes, hits/misses."""
    where = mirror.get("endpoint") or "-"
    entries = mirror.get("entries")
    counted = "entries unknown" if entries is None else f"{entries} entries"
    shown = megabytes(mirror.get("size_bytes"))
    hits = (
        "hits/misses not exposed"
        if mirror.get("hits") is None
        else f"{mirror['hits']} hits, {mirror['misses']} misses"
    )
    return f"{mirror['upstream']} {where} {mirror['state']}, {counted}, {shown}, {hits}"


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items() if v not in (None, [], {}))
    if isinstance(value, list):
        return ", ".join(_short(v) for v in value)
    return str(value)


def run_status(ctx: AppContext, *, as_json: bool) -> int:
    status = collect_status(ctx)
    if as_json:
        print(json.dumps(status.document, indent=2))
    elif use_color(sys.stdout):
        from pallet_dev.richout import console_for, status_renderable

        console_for(sys.stdout).print(status_renderable(status.document))
    else:
        print(render_status(status))
    return 0
