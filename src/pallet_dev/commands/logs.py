"""`pallet-dev logs AGENT [-f] [--tail N]`: an agent's logs, from either backend."""

from __future__ import annotations

from pallet_dev.backends.table import active_backend_name, make_backend
from pallet_dev.context import AppContext
from pallet_dev.errors import ConfigError, UsageError

# `logs -f` runs until Ctrl-C; a bound all the same (a week)
FOLLOW_TIMEOUT = 7 * 24 * 3600.0


def run_logs(ctx: AppContext, agent: str, *, follow: bool, tail: int | None) -> int:
    config = ctx.load_settings()
    names = [a.name for a in config.agents]
    if agent not in names:
        known = ", ".join(names) if names else "none are configured"
        raise ConfigError(
            f"There is no agent named {agent!r:.60} in the config (agents: {known}).",
            hint="Give one of the names under agents: in pallet-dev.yaml.",
        )
    if tail is not None and tail < 0:
        raise UsageError("--tail must be 0 or more.", hint="For example `--tail 100`.")
    active = ctx.active(config.name) or {}
    backend = make_backend(active_backend_name(config, active), config, ctx.runner, ctx.paths)
    argv = backend.agent_logs_argv(agent, follow=follow, tail=tail)
    ctx.runner.run(
        argv, timeout=FOLLOW_TIMEOUT if follow else 60.0, to_stdout=True, step="agent logs"
    )
    return 0
