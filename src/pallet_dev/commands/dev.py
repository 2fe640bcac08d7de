"""`pallet-dev dev [AGENT ...]`: the inner loop -- edit an agent, see it serving.

Starts from a converged environment (`up`), then watches every built agent's context
(or only the named ones). Each ready batch of changes (agents.loop.ChangeQueue) runs one
cycle per changed agent: content hash (an edit that changes nothing Docker would send is
not a change) -> build -> push -> deploy by digest (only that agent rolls out) -> wait
until its health path answers from the new container or pods. One line per agent and
cycle on stdout, or one JSON object per line with ``--json``.

A failed build deploys nothing; a new version that never turns healthy is replaced by the
previous one again (on kind Helm has already rolled back). Either way the loop keeps
watching. Ctrl-C or SIGTERM stops watching and any running build and exits 130, leaving
the environment up.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev.backends.base import Backend, UpOptions
from pallet_dev.backends.table import select_backend
from pallet_dev.commands.up import agent_images, converge
from pallet_dev.context import AppContext
from pallet_dev.errors import ConfigError, Interrupted, PalletError
from pallet_dev.output import Steps

if TYPE_CHECKING:
    from pallet_dev.agents.images import AgentImage
    from pallet_dev.agents.loop import Batch
    from pallet_dev.settings import AgentSettings, Settings

DEFAULT_CYCLE_TIMEOUT = 60.0


class DevSession:
    """The state between cycles: what runs now, and how to build and deploy a change."""

    def __init__(
        self,
        ctx: AppContext,
        chosen: Backend,
        config: Settings,
        images: list[AgentImage],
        *,
        as_json: bool,
        cycle_timeout: float,
    ) -> None:
        self.ctx = ctx
        self.chosen = chosen
        self.config = config
        self.images = {image.agent: image for image in images}
        self.as_json = as_json
        self.cycle_timeout = cycle_timeout
        self.quiet = Steps(sys.stderr, quiet=True)
        # whether `docker build` lacks BuildKit: asked at the first build, then kept
        self.legacy_builder: bool | None = None

    def emit(self, record: dict[str, Any]) -> None:
        from pallet_dev.agents.loop import describe_cycle

        if self.as_json:
            print(json.dumps(record, sort_keys=True), flush=True)
        elif record.get("event") == "cycle":
            phases: dict[str, float] = {
                k: float(record[k]) for k in ("build", "push", "rollout") if k in record
            }
            line = describe_cycle(
                record["agent"], record["ok"], record["seconds"], phases, record.get("error")
            )
            print(line, flush=True)
            if not record["ok"] and record.get("error"):
                print(record["error"], file=sys.stderr, flush=True)
        elif record.get("event") == "watching":
            watched = ", ".join(record["agents"])
            print(f"Watching {watched} (Ctrl-C stops; the environment stays up)", flush=True)

    def deployments(self, images: dict[str, AgentImage]) -> list[Any]:
        from pallet_dev.agents.spec import deployments

        return deployments(
            self.config.agents,
            [images[a.name] for a in self.config.agents],
            env_name=self.config.name,
            registry_address=self.chosen.agent_registry_address,
        )

    def cycle(self, agents: list[AgentSettings], batch: Batch) -> None:
        started = time.monotonic()
        detect = round(started - batch.first_event, 3)
        builder = agent_images(self.ctx, self.chosen, agents)
        try:
            tags = {a.name: builder.content_tag(a) for a in agents}
        except OSError as exc:  # a file vanished mid-save: the next event retries
            for agent in agents:
                self._failed(agent.name, started, detect, "hash", f"cannot read its files: {exc}")
            return
        todo = [a for a in agents if tags[a.name] != self.images[a.name].tag]
        if not todo:
            return
        deadline = started + self.cycle_timeout
        with self.ctx.env_lock(self.config.name):
            builder = agent_images(
                self.ctx, self.chosen, todo, legacy_builder=self.legacy_builder, tags=tags
            )
            try:
                built = builder.ensure(deadline, self.quiet)
            except PalletError as exc:
                self.legacy_builder = builder.legacy_answer
                for agent in todo:
                    self._failed(agent.name, started, detect, "build", _message(exc))
                return
            self.legacy_builder = builder.legacy_answer
            merged = {**self.images, **{image.agent: image for image in built}}
            rollout_started = time.monotonic()
            try:
                state = self.chosen.roll_out_images(
                    self.deployments(merged), [image.agent for image in built], deadline, self.quiet
                )
            except PalletError as exc:
                self._restore()
                for agent in todo:
                    self._failed(agent.name, started, detect, "rollout", _message(exc))
                return
            rollout = time.monotonic() - rollout_started
            self.images = merged
            active = self.ctx.active(self.config.name) or {}
            self.ctx.record_active(
                self.config.name,
                self.chosen.name,
                str(active.get("endpoint") or self.chosen.endpoint),
                state.to_dict(),
                self.chosen.network_pull_host,
            )
        for image in built:
            self.emit(
                {
                    "event": "cycle",
                    "agent": image.agent,
                    "ok": True,
                    "seconds": round(time.monotonic() - started + detect, 3),
                    "detect": detect,
                    "build": round(image.build_seconds, 3),
                    "push": round(image.push_seconds, 3),
                    "rollout": round(rollout, 3),
                    "digest": image.digest,
                    "error": None,
                }
            )
        builder.prune_host(built, self.quiet)  # once the cycle is reported

    def _restore(self) -> None:
        """Put the previous version back (Docker replaced the container already)."""
        try:
            self.chosen.deploy_agents(
                self.deployments(self.images), time.monotonic() + self.cycle_timeout, self.quiet
            )
        except PalletError as exc:
            print(f"pallet-dev dev: restoring the previous version failed: {exc.message}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def _failed(self, agent: str, started: float, detect: float, phase: str, error: str) -> None:
        self.emit(
            {
                "event": "cycle",
                "agent": agent,
                "ok": False,
                "phase": phase,
                "seconds": round(time.monotonic() - started + detect, 3),
                "detect": detect,
                "error": error,
            }
        )


def _message(exc: PalletError) -> str:
    return exc.message if not exc.hint else f"{exc.message} {exc.hint}"


def run_dev(
    ctx: AppContext,
    *,
    agents: list[str],
    backend: str | None,
    prefer_docker: bool,
    port: int | None,
    timeout: float,
    cycle_timeout: float,
    as_json: bool,
) -> int:
    from pallet_dev.agents.loop import ChangeQueue, watch_contexts
    from pallet_dev.config_sources import checked_seconds

    timeout = checked_seconds(timeout, "--timeout")
    cycle_timeout = checked_seconds(cycle_timeout, "--cycle-timeout")

    config = ctx.load_settings(overrides={("backend",): backend, ("registry", "port"): port})
    names = [a.name for a in config.agents]
    unknown = [name for name in agents if name not in names]
    if unknown:
        raise ConfigError(
            f"No agent named {unknown[0]!r:.60} in the config (agents: "
            f"{', '.join(names) or 'none'}).",
            hint="Name agents listed under agents: in pallet-dev.yaml, or none to watch all.",
        )
    watched = [a for a in config.agents if a.build and (not agents or a.name in agents)]
    if not watched:
        raise ConfigError(
            "There is no agent with a build: section to watch.",
            hint="`pallet-dev dev` rebuilds agents from their build context; add agents: "
            "with build: to pallet-dev.yaml (docs/agents.md).",
        )
    steps = ctx.steps()
    selection = select_backend(config, ctx.runner, ctx.paths, prefer_docker=prefer_docker)
    if selection.notice:
        steps.warn(selection.notice)
    chosen = selection.backend
    steps.title(f"Bringing up '{config.name}' with the {chosen.name} backend ...")
    _, _, images = converge(ctx, chosen, UpOptions(timeout=timeout), steps)
    session = DevSession(ctx, chosen, config, images, as_json=as_json, cycle_timeout=cycle_timeout)
    queue = ChangeQueue()
    stop = threading.Event()
    contexts = {a.name: Path(a.build.context) for a in watched if a.build is not None}
    watch_contexts(contexts, queue, stop)
    session.emit({"event": "watching", "agents": sorted(contexts)})
    by_name = {a.name: a for a in watched}
    try:
        while True:
            batch = queue.wait(stop)
            if batch is None:
                break
            session.cycle([by_name[name] for name in sorted(batch.agents)], batch)
    except KeyboardInterrupt:
        stop.set()
        raise Interrupted(
            "stopped watching; the environment stays up (`pallet-dev down` removes it)."
        ) from None
    return 0
