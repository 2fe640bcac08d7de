"""`pallet-dev up`: bring the environment to a healthy registry."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pallet_dev.context import AppContext
from pallet_dev.errors import ConfigError, UsageError
from pallet_dev.output import Steps

if TYPE_CHECKING:
    from pallet_dev.agents.target import ImageTarget
    from pallet_dev.backends.base import Backend, Plan, PlanStep, UpOptions, UpResult
    from pallet_dev.agents.images import AgentImage, AgentImages
    from pallet_dev.agents.spec import AgentsState
    from pallet_dev.settings import AgentSettings, Settings


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
    from pallet_dev.config_sources import checked_seconds

    timeout = checked_seconds(timeout, "--timeout")
    if prefer_docker and backend not in (None, "docker"):
        raise UsageError(
            f"--prefer-docker contradicts --backend {backend}.",
            hint="Give one of them: --prefer-docker (or --backend docker), or --backend "
            f"{backend}.",
        )
    config = ctx.load_settings(overrides={("backend",): backend, ("registry", "port"): port})
    ahead = None if dry_run else start_images_ahead(ctx, config, timeout, recreate=recreate)
    try:
        # the backends load once the agents' builds run (they need none of it)
        from pallet_dev.backends.base import UpOptions

        options = UpOptions(
            timeout=timeout,
            recreate=recreate,
            values_files=chart_values_files(ctx, config.chart.values, values_files),
            set_overrides=tuple(config.chart.set) + tuple(set_overrides),
        )
        return _run_up(
            ctx, config, options, ahead, prefer_docker=prefer_docker, dry_run=dry_run,
            as_json=as_json,
        )  # fmt: skip
    except BaseException:
        if ahead is not None:
            ahead.cancel_ahead()
        raise


def start_images_ahead(
    ctx: AppContext, config: Settings, timeout: float, *, recreate: bool
) -> AgentImages | None:
    """The agents' images begun at once, while the backend loads and checks the registry:
    on every backend but a shared cluster their registry is known from the config alone
    (nor with ``recreate``: the registry is about to be replaced)."""
    from pallet_dev.agents.target import own_image_target

    if recreate or config.backend == "cluster" or not config.agents:
        return None
    images = agent_images_for(ctx, own_image_target(config), config.agents)
    images.start_ahead(time.monotonic() + timeout)
    return images


def _run_up(
    ctx: AppContext,
    config: Settings,
    options: UpOptions,
    ahead: AgentImages | None,
    *,
    prefer_docker: bool,
    dry_run: bool,
    as_json: bool,
) -> int:
    from pallet_dev.backends.table import select_backend

    selection = select_backend(
        config, ctx.runner, ctx.paths, prefer_docker=prefer_docker, dry_run=dry_run
    )
    chosen = selection.backend
    steps = ctx.steps()
    if selection.notice:
        steps.warn(selection.notice)
    if not chosen.uses_chart and (options.values_files or options.set_overrides):
        steps.warn(
            f"Helm values (chart.values/chart.set, -f/--values, --set) apply to the kind "
            f"backend only; the {chosen.name} backend ignores them."
        )
    if dry_run:
        plan = chosen.plan_up(options)
        if config.agents:
            plan = replace(plan, steps=[*plan.steps, *plan_agents(ctx, chosen, config, options)])
        if as_json:
            print(json.dumps(plan.to_dict(), indent=2))
        else:
            print(render_plan(plan))
        return 0
    return bring_up(ctx, chosen, options, steps, as_json=as_json, ahead=ahead)


def bring_up(
    ctx: AppContext,
    chosen: Backend,
    options: UpOptions,
    steps: Steps,
    *,
    as_json: bool,
    ahead: AgentImages | None = None,
) -> int:
    """Converge ``chosen`` under the environment's lock and print where the registry is."""
    announce(chosen.config, chosen.name, steps)
    result, agents, images = converge(ctx, chosen, options, steps, ahead=ahead)
    return report(result, agents, images, as_json=as_json)


def announce(config: Settings, backend: str, steps: Steps) -> None:
    if not config.registry.is_loopback:
        steps.warn(
            f"registry.bind_address is {config.registry.bind_address}: the registry has no "
            "authentication and will be reachable from other machines."
        )
    steps.title(f"Bringing up '{config.name}' with the {backend} backend ...")


def report(
    result: UpResult,
    agents: AgentsState | None,
    images: Sequence[AgentImage],
    *,
    as_json: bool,
) -> int:
    """Where the registry (and the agents) are: JSON, or lines for people."""
    summary: dict[str, Any] = {
        "backend": result.backend,
        "endpoint": result.endpoint,
        "changed": result.changed,
        "actions": result.actions,
    }
    if agents is not None:
        built = {image.agent for image in images if image.built}
        summary["agents"] = [
            {"name": e.name, "digest": e.digest, "built": e.name in built} for e in agents.endpoints
        ]
        if built:
            summary["changed"] = True
            summary["actions"] = [*result.actions, *(f"built-agent-{n}" for n in sorted(built))]
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        host = result.endpoint.split("://", 1)[1]
        print(f"Registry ready at {result.endpoint}")
        print(f"  push:  docker tag IMAGE {host}/IMAGE && docker push {host}/IMAGE")
        for endpoint in agents.endpoints if agents else []:
            where = endpoint.urls[0] if endpoint.urls else endpoint.proxy_url
            print(f"Agent {endpoint.name} ready ({endpoint.digest}): {where}")
    sys.stdout.flush()
    return 0


def unchanged_since_last_up(ctx: AppContext, config: Settings) -> bool:
    """Whether `up` on kind has nothing to do: the last `up`'s record still holds.

    The record (backends/kind_record.py) must match the inputs and the kubeconfig files
    (no subprocess), then one `docker inspect` of the node and the registry image and one
    GET /v2/, at once. Any doubt or error is a False: the full `up` then runs, and finds
    and reports what is wrong. Prints nothing.
    """
    from pallet_dev.backends import kind_record
    from pallet_dev.backends.table import KIND
    from pallet_dev.errors import PalletError

    try:
        values_files = chart_values_files(ctx, config.chart.values, ())
        record = _recorded_up(ctx, config, KIND.name, values_files, config.chart.set)
        if record is None:
            return False
        with ctx.env_lock(config.name):
            return kind_record.verify(ctx.runner, config, record)
    except PalletError:
        return False


def _recorded_up(
    ctx: AppContext,
    config: Settings,
    backend: str,
    values_files: Sequence[str],
    set_overrides: Sequence[str],
) -> dict[str, Any] | None:
    """The last `up`'s record when its local half holds for ``backend`` (no subprocess)."""
    from pallet_dev.backends.table import KIND
    from pallet_dev.context import UP_RECORD

    if backend != KIND.name:  # the only backend that keeps a record
        return None
    from pallet_dev.backends import kind_record
    from pallet_dev.chart.inputs import find_chart_dir

    active = ctx.active(config.name) or {}
    record = active.get(UP_RECORD)
    if (
        active.get("backend") != backend
        or active.get("endpoint") != config.registry_url
        or not isinstance(record, dict)
        or KIND.missing(ctx.runner, check_daemon=False)
    ):
        return None
    inputs = kind_record.inputs_digest(
        config.to_dict(), find_chart_dir(), values_files, set_overrides
    )
    if not kind_record.holds_here(record, inputs, ctx.paths.kind_kubeconfig(config.name)):
        return None
    return record


def _registry_as_last_up(
    ctx: AppContext, chosen: Backend, options: UpOptions, steps: Steps
) -> UpResult | None:
    """With agents to converge: the cluster and registry as the last `up` verified them
    (its record holds: the same checks as an unchanged `up`), so only the agents change;
    None when the backend's whole `up` must run. Under the environment's lock."""
    from pallet_dev.errors import PalletError

    config = chosen.config
    if options.recreate:
        return None
    try:
        record = _recorded_up(ctx, config, chosen.name, options.values_files, options.set_overrides)
        if record is None:
            return None
        from pallet_dev.backends import kind_record

        if not kind_record.verify(ctx.runner, config, record):
            return None
        chosen.as_last_up(options, record)
    except PalletError:
        return None
    from pallet_dev.backends.base import UpResult

    _say_unchanged(config, steps)
    return UpResult(chosen.name, config.registry_url, False, [], record)


def _say_unchanged(config: Settings, steps: Steps) -> None:
    steps.done(
        f"Cluster '{config.name}' unchanged since the last `up` (same node, config, chart, "
        "values, image and kubeconfig)"
    )
    steps.done(f"Registry answers at {config.registry_url}/v2/")


def report_unchanged(ctx: AppContext, config: Settings, *, as_json: bool) -> int:
    """`up`'s lines and summary when :func:`unchanged_since_last_up` said so."""
    from pallet_dev.backends.base import UpResult
    from pallet_dev.backends.table import KIND

    steps = ctx.steps()
    announce(config, KIND.name, steps)
    _say_unchanged(config, steps)
    return report(UpResult(KIND.name, config.registry_url, False, []), None, [], as_json=as_json)


def converge(
    ctx: AppContext,
    chosen: Backend,
    options: UpOptions,
    steps: Steps,
    *,
    ahead: AgentImages | None = None,
) -> tuple[UpResult, AgentsState | None, list[AgentImage]]:
    """The registry, then the agents, under the environment's lock; recorded for `health`.
    ``ahead``: the agents' images as :func:`start_images_ahead` began them."""
    config = chosen.config
    deadline = time.monotonic() + options.timeout
    agents: AgentsState | None = None
    images: list[AgentImage] = []
    with ctx.env_lock(config.name):
        previous = (ctx.active(config.name) or {}).get("agents")
        configured = config.agents
        # a changed agent needs nothing of the cluster that its last `up` verified
        kept = _registry_as_last_up(ctx, chosen, options, steps) if configured else None
        if kept is None:
            ctx.forget_up_record(config.name)
            result = chosen.up(options, steps)
        else:
            result = kept
        warn_outside_contexts(ctx, configured, steps)
        if configured or previous:
            agents, images = converge_agents(ctx, chosen, configured, deadline, steps, ahead=ahead)
        ctx.record_active(
            config.name,
            chosen.name,
            result.endpoint,
            agents.to_dict() if agents else None,
            chosen.network_pull_host,
            result.record,
        )
    return result, agents, images


def chart_values_files(
    ctx: AppContext, from_config: Sequence[str], from_flags: Sequence[str]
) -> tuple[str, ...]:
    """Every values file as an absolute path that exists, whichever backend runs.

    The config's ``chart.values`` are relative to the config file's folder (so a config
    works from any subfolder), ``-f`` files to the current folder.
    """
    from pathlib import Path

    base = ctx.config_path.resolve().parent if ctx.config_path else Path.cwd()
    where = f"{ctx.config_path}: chart.values" if ctx.config_path else "chart.values"
    files: list[str] = []
    for origin, folder, names in ((where, base, from_config), ("--values", Path.cwd(), from_flags)):
        for name in names:
            if "\x00" in name:
                raise ConfigError(
                    f"{origin}: the Helm values file name {name!r:.80} holds a NUL byte.",
                    hint="Give the path of a YAML file.",
                )
            path = (folder / Path(name).expanduser()).resolve()
            if path.exists() and not path.is_file():
                raise ConfigError(
                    f"{origin}: cannot read the Helm values file {name!r:.80}: it is not a "
                    "regular file.",
                    hint="Give a YAML file (not a folder, pipe or device).",
                )
            if not path.is_file():
                raise ConfigError(
                    f"{origin}: the Helm values file {name!r:.80} does not exist ({path}).",
                    hint="Fix the path (chart.values are relative to pallet-dev.yaml's "
                    "folder, -f files to the current folder).",
                )
            files.append(str(path))
    return tuple(files)


def warn_outside_contexts(ctx: AppContext, agents: Sequence[AgentSettings], steps: Steps) -> None:
    """Say so when an agent builds from a folder outside the config file's folder."""
    if ctx.config_path is None:
        return
    from pathlib import Path

    home = ctx.config_path.resolve().parent
    for agent in agents:
        if agent.build is None:
            continue
        context = Path(agent.build.context)
        if home not in (context, *context.parents):
            steps.warn(
                f"agent '{agent.name}' builds from {context}, outside {home} (the folder of "
                f"{ctx.config_path.name})."
            )


def agent_images(
    ctx: AppContext,
    chosen: Backend,
    agents: Sequence[AgentSettings],
    *,
    legacy_builder: bool | None = None,
    tags: Mapping[str, str] | None = None,
) -> AgentImages:
    return agent_images_for(
        ctx, chosen.agent_image_target(), agents, legacy_builder=legacy_builder, tags=tags
    )


def agent_images_for(
    ctx: AppContext,
    target: ImageTarget,
    agents: Sequence[AgentSettings],
    *,
    legacy_builder: bool | None = None,
    tags: Mapping[str, str] | None = None,
) -> AgentImages:
    from pallet_dev.agents.images import AgentImages

    return AgentImages(
        target.folder,
        agents,
        ctx.runner,
        registry_url=target.registry_url,
        registry_host=target.registry_host,
        registry_login=target.login,
        legacy_builder=legacy_builder,
        builder_memo=ctx.paths.docker_builder_memo(),
        tags=tags,
    )


def plan_agents(
    ctx: AppContext, chosen: Backend, config: Settings, options: UpOptions
) -> list[PlanStep]:
    """Build, push and deploy steps of the agents (digests are known only after the push)."""
    from pallet_dev.agents.images import AgentImage, repository_for
    from pallet_dev.agents.spec import deployments

    builder = agent_images(ctx, chosen, config.agents)
    placeholders = [
        AgentImage(
            a.name,
            builder.registry_host,
            repository_for(builder.env_name, a.name),
            "",
            "<digest>",
            False,
        )
        for a in config.agents
    ]
    planned = deployments(
        config.agents,
        placeholders,
        env_name=config.name,
        registry_address=chosen.agent_registry_address,
    )
    return [*builder.plan(), *chosen.plan_agents(planned, options)]


def converge_agents(
    ctx: AppContext,
    chosen: Backend,
    agents: Sequence[AgentSettings],
    deadline: float,
    steps: Steps,
    *,
    ahead: AgentImages | None = None,
) -> tuple[AgentsState, list[AgentImage]]:
    """Build what changed, push it, deploy every agent by digest and wait for its health."""
    from pallet_dev.agents.spec import deployments

    chosen.look_ahead_agents()
    builder = agent_images(ctx, chosen, agents)
    if ahead is not None and (ahead.target, ahead.agents) == (builder.target, builder.agents):
        builder = ahead  # what it started is for this backend's registry: go on with it
    elif ahead is not None:
        ahead.cancel_ahead()
    images = builder.ensure(deadline, steps)
    planned = deployments(
        agents,
        images,
        env_name=chosen.config.name,
        registry_address=chosen.agent_registry_address,
    )
    state = chosen.deploy_agents(planned, deadline, steps)
    builder.prune_host(images, steps)
    return state, images
