"""`pallet-dev up`: bring the environment to a healthy registry."""

from __future__ import annotations

import json
import sys
from typing import Any

from pallet_dev.backends.base import Plan, UpOptions
from pallet_dev.backends.select import select_backend
from pallet_dev.context import AppContext


def render_plan(plan: Plan) -> str:
    lines = [f"Plan for backend '{plan.backend}' (nothing was changed):"]
    for number, step in enumerate(plan.steps, 1):
        lines.append(f"{number:>2}. {step.name}")
        if step.argv:
            lines.append(f"      $ {' '.join(_quote(arg) for arg in step.argv)}")
        if step.detail:
            lines.append(f"      {step.detail}")
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def run_up(
    ctx: AppContext,
    *,
    backend: str | None,
    prefer_docker: bool,
    port: int | None,
    timeout: float,
    recreate: bool,
    dry_run: bool,
    as_json: bool,
    values_files: list[str],
    set_overrides: list[str],
) -> int:
    config = ctx.load_config(overrides={("backend",): backend, ("registry", "port"): port})
    options = UpOptions(
        timeout=timeout,
        recreate=recreate,
        values_files=tuple(config.chart.values) + tuple(values_files),
        set_overrides=tuple(config.chart.set) + tuple(set_overrides),
    )
    selection = select_backend(
        config, ctx.runner, ctx.paths, prefer_docker=prefer_docker, dry_run=dry_run
    )
    chosen = selection.backend
    steps = ctx.steps()
    if selection.notice:
        steps.warn(selection.notice)
    if dry_run:
        plan = chosen.plan_up(options)
        if as_json:
            print(json.dumps(plan.to_dict(), indent=2))
        else:
            print(render_plan(plan))
        return 0
    if not config.registry.is_loopback:
        steps.warn(
            f"registry.bind_address is {config.registry.bind_address}: the registry has no "
            "authentication and will be reachable from other machines."
        )
    steps.title(f"Bringing up '{config.name}' with the {chosen.name} backend ...")
    with ctx.env_lock(config.name):
        result = chosen.up(options, steps)
        ctx.record_active(config.name, chosen.name, result.endpoint)
    summary: dict[str, Any] = {
        "backend": result.backend,
        "endpoint": result.endpoint,
        "changed": result.changed,
        "actions": result.actions,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        host = result.endpoint.split("://", 1)[1]
        print(f"Registry ready at {result.endpoint}")
        print(f"  push:  docker tag IMAGE {host}/IMAGE && docker push {host}/IMAGE")
    sys.stdout.flush()
    return 0
