"""`pallet-dev health [--json]`: does the registry (and every Pallet agent) answer?

Kept light: no subprocess, no rich; one parallel round of probes (the registry, the
services and the agents at once).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from pallet_dev.context import AppContext
from pallet_dev.output import use_color
from pallet_dev.probe import ProbeResult, ProbeTarget, probe_all, registry_target

if TYPE_CHECKING:
    from pallet_dev.agents.health import AgentHealth
    from pallet_dev.settings import Settings

SCHEMA_VERSION = 1


def health_document(
    results: list[ProbeResult],
    *,
    backend: str | None,
    started: float,
    checked_at: str,
    agents: list[AgentHealth] | None = None,
) -> dict[str, Any]:
    agents = agents or []
    healthy = all(result.healthy for result in results) and all(a.healthy for a in agents)
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "healthy" if healthy else "unhealthy",
        "checked_at": checked_at,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "backend": backend,
        "services": [
            {
                "name": result.name,
                "url": result.url,
                "healthy": result.healthy,
                "status_code": result.status_code,
                "latency_ms": result.latency_ms,
                "error": result.error,
            }
            for result in results
        ],
    }
    if agents:
        document["agents"] = [agent.to_dict() for agent in agents]
    return document


def render_table(
    results: list[ProbeResult], color: bool, agents: list[AgentHealth] | None = None
) -> str:
    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    results = [*results, *(_as_probe(agent) for agent in agents or [])]

    width = max([len("SERVICE")] + [len(result.name) for result in results])
    url_width = max([len("URL")] + [len(result.url) for result in results])
    lines = [f"{'SERVICE':<{width}}  {'STATE':<9}  {'CODE':>4}  {'MS':>7}  URL"]
    for result in results:
        state = "up" if result.healthy else "DOWN"
        shown = paint(f"{state:<9}", "32" if result.healthy else "31")
        code = str(result.status_code) if result.status_code is not None else "-"
        line = (
            f"{result.name:<{width}}  {shown}  {code:>4}  {result.latency_ms:>7.1f}  "
            f"{result.url:<{url_width}}"
        )
        note = result.error or result.detail
        if note:
            line += f"  {note}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def _as_probe(agent: AgentHealth) -> ProbeResult:
    """An agent as a table row: its replicas in the detail column."""
    detail = f"{agent.ready_replicas}/{agent.desired_replicas} ready"
    return ProbeResult(
        agent.name,
        agent.url,
        agent.healthy,
        agent.status_code,
        agent.latency_ms,
        agent.error,
        detail if agent.error is None else None,
    )


def agent_health(settings: Settings, active: dict[str, Any], timeout: float) -> list[AgentHealth]:
    """Every configured agent, from what `up` recorded (not deployed when it recorded none)."""
    recorded = active.get("agents") or {}
    names = [agent.name for agent in settings.agents]
    if not names and not recorded.get("agents"):
        return []
    from pallet_dev.agents.health import check_agents, not_deployed
    from pallet_dev.agents.spec import AgentEndpoint, ApiAccess

    endpoints = {
        item["name"]: AgentEndpoint.from_dict(item) for item in recorded.get("agents") or []
    }
    api = ApiAccess(**recorded["api"]) if recorded.get("api") else None
    wanted = [endpoints[name] for name in names if name in endpoints]
    checked = {a.name: a for a in check_agents(wanted, api, timeout)}
    backend = active.get("backend")
    return [checked.get(name) or not_deployed(name, backend) for name in names]


def _probe_with_agents(
    targets: list[ProbeTarget], settings: Settings, active: dict[str, Any], timeout: float
) -> tuple[list[ProbeResult], list[AgentHealth]]:
    """The registry's and services' probes and the agents' checks at the same time (each
    bounded by ``timeout``): `health` takes the longer of the two, not their sum."""
    if not settings.agents and not (active.get("agents") or {}).get("agents"):
        return probe_all(targets, timeout), []
    import threading

    outcome: list[list[AgentHealth] | BaseException] = []

    def check() -> None:
        try:
            outcome.append(agent_health(settings, active, timeout))
        except BaseException as exc:  # raised again in the calling thread
            outcome.append(exc)

    thread = threading.Thread(target=check, name="pallet-agents-health", daemon=True)
    thread.start()
    results = probe_all(targets, timeout)
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return results, outcome[0]


def run_health(ctx: AppContext, *, as_json: bool, timeout: float) -> int:
    from pallet_dev.config_sources import MAX_PROBE_SECONDS, checked_seconds

    timeout = checked_seconds(timeout, "--timeout", MAX_PROBE_SECONDS)
    started = time.perf_counter()
    checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    settings = ctx.load_settings()
    active = ctx.active(settings.name) or {}
    endpoint = active.get("endpoint") or settings.registry_url
    backend = active.get("backend") or (None if settings.backend == "auto" else settings.backend)
    targets = [registry_target(endpoint)] + [
        ProbeTarget(service.name, service.url, service.expect_status)
        for service in settings.services
    ]
    results, agents = _probe_with_agents(targets, settings, active, timeout)
    document = health_document(
        results, backend=backend, started=started, checked_at=checked_at, agents=agents
    )
    ctx.log.write(
        "health",
        status=document["status"],
        duration_ms=document["duration_ms"],
        unhealthy=[result.name for result in results if not result.healthy]
        + [agent.name for agent in agents if not agent.healthy],
    )
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        if use_color(sys.stdout):
            from pallet_dev.richout import console_for, health_table

            console_for(sys.stdout).print(health_table(results, agents or []))
        else:
            print(render_table(results, False, agents))
    return 0 if document["status"] == "healthy" else 1
