"""Agent images: content-hashed, built with the Docker CLI, pushed to the local registry.

For an agent with ``build``, the tag is the content hash of its build inputs
(:mod:`pallet_dev.agents.context_hash`). When the registry already has that tag,
nothing is built or pushed; otherwise `docker build` runs (agents in parallel, as
many as there are cores) and `docker push` moves only the layers the registry
lacks. For an agent with a ready ``image``, the host's copy (pulled when missing)
is pushed under a tag made from its image ID. Either way the backends deploy by the
digest the registry reports, never by a moving tag.

`up` starts that work early (:meth:`AgentImages.start_ahead`): while it still checks
the registry, each built agent is hashed, its tag asked of the registry when it already
answers, and built when missing. Nothing is pushed before :meth:`AgentImages.ensure`,
which runs once the registry is verified and does whatever the early start could not.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet_dev.agents.context_hash import HASH_LENGTH, build_hash
from pallet_dev.settings import AgentSettings
from pallet_dev.errors import (
    CommandFailed,
    CommandTimeout,
    OperationFailed,
    PalletError,
    ReadinessTimeout,
)
from pallet_dev.probe import manifest_digest
from pallet_dev.runner import Runner, stopping_all_tools, wait_in_threads
from pallet_dev.tools.docker import LABEL_AGENT, LABEL_MANAGED, Docker

if TYPE_CHECKING:
    from pallet_dev.backends.base import PlanStep
    from pallet_dev.output import Steps

CAP_BUILD = 1800.0
CAP_PUSH = 600.0
# the early start's manifest check: a local registry answers in milliseconds, and any
# doubt leaves the check to ensure (with its own, longer timeout)
AHEAD_ASK_TIMEOUT = 1.0
# how long the early start lets its builds' threads reach `docker build` before the
# caller goes on (the bound of a wait on an event, not a delay)
AHEAD_SPAWN_WAIT = 0.2
# a failed build's output is shown in full, up to this many (last) lines
FAILED_OUTPUT_LINES = 1000
# this host's older build images of an agent: the newest few stay (a quick way back, and
# their layers are the build cache), the others go once a batch of them has gathered (a
# legacy build looks through every image on the host: thousands slow each rebuild); the
# registry keeps every one
KEEP_LOCAL = 3
PRUNE_BATCH = 5


@dataclass(frozen=True)
class AgentImage:
    """An agent's image as it sits in the local registry."""

    agent: str
    registry_host: str  # localhost:<port>, where this host pushes
    repository: str  # <env>/<agent>
    tag: str  # the content hash (built) or image-ID prefix (ready image)
    digest: str  # sha256:..., what the backends deploy
    built: bool  # built and pushed by this run
    seconds: float = 0.0
    build_seconds: float = 0.0
    push_seconds: float = 0.0

    @property
    def tagged(self) -> str:
        return f"{self.registry_host}/{self.repository}:{self.tag}"

    @property
    def ref(self) -> str:
        return f"{self.registry_host}/{self.repository}@{self.digest}"


def repository_for(env_name: str, agent: str) -> str:
    return f"{env_name}/{agent}"


@dataclass(frozen=True)
class _Ahead:
    """What the early start found or did for one built agent (nothing pushed)."""

    tag: str
    digest: str | None = None  # the registry has the tag already
    build_seconds: float | None = None  # built ahead, in this many seconds
    error: BaseException | None = None  # the build failed: ensure reports it


class AgentImages:
    """Builds and pushes the images of a set of agents for one environment."""

    def __init__(
        self,
        env_name: str,
        agents: Sequence[AgentSettings],
        runner: Runner,
        *,
        registry_url: str,
        registry_host: str,
        registry_login: str | None = None,
        legacy_builder: bool | None = None,
        builder_memo: Path | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.env_name = env_name
        self.agents = list(agents)
        self.runner = runner
        self.registry_url = registry_url
        self.registry_host = registry_host
        # base64 user:password for a registry that wants a login to read (a team's)
        self.registry_login = registry_login
        # whether `docker build` lacks BuildKit, when a caller already asked (`dev`)
        self._legacy: bool | None = legacy_builder
        # where the answer is kept between runs (Docker.legacy_builder)
        self._builder_memo = builder_memo
        # content hashes a caller computed already, by agent (`dev` hashes to find changes)
        self._tags = dict(tags or {})
        self._ahead: dict[str, _Pending] = {}
        self._build_slots = threading.BoundedSemaphore(1)
        self._relay = _Relay()
        self._lock = threading.Lock()

    @property
    def target(self) -> tuple[str, str, str, str | None]:
        """Where the images go: folder, registry URL, push host, login."""
        return (self.env_name, self.registry_url, self.registry_host, self.registry_login)

    def labels(self, agent: str) -> dict[str, str]:
        # no environment name: the same build inputs make the same image (and digest)
        # in every environment and backend
        return {LABEL_MANAGED: "true", LABEL_AGENT: agent}

    def build_argv(self, agent: AgentSettings, tag: str, *, legacy: bool = False) -> list[str]:
        assert agent.build is not None
        context = Path(agent.build.context)
        return Docker.build_argv(
            tag,
            str(context),
            str(context / agent.build.dockerfile),
            target=agent.build.target,
            args=agent.build.args,
            # the legacy builder writes labels as one more committed step (~0.2 s of each
            # rebuild); BuildKit sets them in the image config for free
            labels=None if legacy else self.labels(agent.name),
            legacy=legacy,
        )

    def legacy_builder(self, docker: Docker) -> bool:
        """True without BuildKit (asked once, only when something is built)."""
        with self._lock:
            if self._legacy is None:
                self._legacy = docker.legacy_builder(self._builder_memo)
            return self._legacy

    @property
    def legacy_answer(self) -> bool | None:
        """What :meth:`legacy_builder` found (None: not asked yet)."""
        return self._legacy

    def content_tag(self, agent: AgentSettings) -> str:
        assert agent.build is not None
        if agent.name in self._tags:
            return self._tags[agent.name]
        return build_hash(
            Path(agent.build.context),
            agent.build.dockerfile,
            target=agent.build.target,
            args=agent.build.args,
        )

    # --- the plan ----------------------------------------------------------------------
    def plan(self) -> list[PlanStep]:
        from pallet_dev.backends.base import PlanStep

        steps: list[PlanStep] = []
        for agent in self.agents:
            repository = repository_for(self.env_name, agent.name)
            if agent.build is not None:
                tag = self.content_tag(agent)
                tagged = f"{self.registry_host}/{repository}:{tag}"
                steps.append(
                    PlanStep(
                        f"Build agent '{agent.name}' (only when the registry lacks tag {tag}, "
                        "the content hash of its build inputs)",
                        self.build_argv(agent, tagged),
                        detail=f"HEAD {self.registry_url}/v2/{repository}/manifests/{tag} first",
                    )
                )
            else:
                assert agent.image is not None
                tagged = f"{self.registry_host}/{repository}:<image-id>"
                steps.append(
                    PlanStep(
                        f"Tag the ready image {agent.image} of agent '{agent.name}' "
                        "(pulled first only when the host lacks it)",
                        ["docker", "image", "tag", agent.image, tagged],
                    )
                )
            steps.append(
                PlanStep(
                    f"Push agent '{agent.name}' to the local registry (only missing layers move)",
                    Docker.push_argv(tagged),
                    detail="then deployed by the digest the registry reports",
                )
            )
        return steps

    # --- the early start ----------------------------------------------------------------
    def start_ahead(self, deadline: float) -> None:
        """Begin each built agent's image while the caller still loads the backend and
        checks the registry: hash it and ask the registry for the tag here (a few ms, and
        only when the registry already answers), then build what it lacks in the
        background. Nothing is pushed and nothing is printed; :meth:`ensure` takes the
        results (and reports a failed build), :meth:`cancel_ahead` stops the rest."""
        built = [agent for agent in self.agents if agent.build is not None]
        if not built or self._ahead:
            return
        # each missing image's build starts as soon as it is known missing, in a thread of
        # its own that only waits on `docker build`; the slots bound how many run at once
        self._build_slots = threading.BoundedSemaphore(self._workers(len(built)))
        spawned: list[threading.Event] = []
        for agent in built:
            try:
                tag = self.content_tag(agent)
                digest = manifest_digest(
                    self.registry_url,
                    repository_for(self.env_name, agent.name),
                    tag,
                    login=self.registry_login,
                    timeout=AHEAD_ASK_TIMEOUT,
                )
            except (OSError, PalletError):
                break  # not answering yet (or a file is unreadable): ensure does the rest
            if digest is not None:
                self._ahead[agent.name] = _Pending(_Ahead(tag, digest=digest))
                continue
            pending = self._ahead[agent.name] = _Pending()
            spawned.append(threading.Event())
            threading.Thread(
                target=self._build_ahead,
                args=(agent, tag, deadline, pending, spawned[-1]),
                name=f"pallet-ahead-{agent.name}",
            ).start()
        # the caller's next imports would hold the GIL while a build thread still prepares
        # its `docker build`: let the builds that may start now start first (bounded)
        until = time.monotonic() + AHEAD_SPAWN_WAIT
        for event in spawned[: self._workers(len(built))]:
            event.wait(max(0.0, until - time.monotonic()))

    def cancel_ahead(self) -> None:
        """Stop what :meth:`start_ahead` still runs (the caller failed before :meth:`ensure`);
        an image already built stays on this host, unpushed."""
        pending, self._ahead = list(self._ahead.values()), {}
        if all(found.done() for found in pending):
            return
        with stopping_all_tools():
            for found in pending:
                found.result()

    def _build_ahead(
        self,
        agent: AgentSettings,
        tag: str,
        deadline: float,
        pending: _Pending,
        spawned: threading.Event,
    ) -> None:
        found = _Ahead(tag, error=RuntimeError("the early build did not end"))
        try:
            with self._build_slots:
                started = time.monotonic()
                try:
                    docker = Docker(self.runner, timeout=_left(deadline, 60.0, agent.name))
                    repository = repository_for(self.env_name, agent.name)
                    tagged = f"{self.registry_host}/{repository}:{tag}"
                    self._run_build(docker, agent, tagged, deadline, on_start=spawned.set)
                except Exception as exc:  # noqa: BLE001 - ensure raises it in its own thread
                    found = _Ahead(tag, error=exc)
                else:
                    found = _Ahead(tag, build_seconds=time.monotonic() - started)
        finally:
            spawned.set()
            pending.set(found)

    def _take_ahead(self, agent: str) -> _Ahead | None:
        pending = self._ahead.get(agent)
        if pending is None:
            return None
        found = pending.result()  # kept until then: an interruption while waiting cancels it
        self._ahead.pop(agent, None)
        return found

    @staticmethod
    def _workers(count: int) -> int:
        return max(1, min(count, os.cpu_count() or 2))

    # --- build and push ------------------------------------------------------------------
    def ensure(self, deadline: float, steps: Steps) -> list[AgentImage]:
        """Every agent's image in the registry; builds run in parallel."""
        if not self.agents:
            return []
        live = _live_display(steps, [agent.name for agent in self.agents])
        self._relay.attach(live)
        workers = self._workers(len(self.agents))
        outcomes: list[AgentImage | BaseException] = []
        try:
            if workers == 1:
                # in this thread, so Ctrl-C stops the build at once (the runner kills it)
                for agent in self.agents:
                    try:
                        outcomes.append(self._ensure_one(agent, deadline, live))
                    except (OperationFailed, CommandFailed) as build_error:
                        outcomes.append(build_error)
            else:
                futures = wait_in_threads(
                    [partial(self._ensure_one, a, deadline, live) for a in self.agents],
                    workers=workers,
                    name="pallet-build",
                )
                for future in futures:
                    error = future.exception()
                    outcomes.append(error if error is not None else future.result())
        except BaseException:
            self.cancel_ahead()
            raise
        finally:
            self._relay.detach()
            live.clear()  # whatever happened (Ctrl-C included): the display goes, the cursor back
        images: list[AgentImage] = []
        failure: BaseException | None = None
        for agent, outcome in zip(self.agents, outcomes):
            if isinstance(outcome, BaseException):
                steps.failed(f"Agent '{agent.name}' image")
                failure = failure or outcome
                continue
            what = (
                f"built and pushed {outcome.tagged}"
                if outcome.built
                else f"unchanged ({outcome.tagged} is in the registry)"
            )
            steps.done(
                f"Agent '{agent.name}' image {what}", outcome.seconds if outcome.built else None
            )
            images.append(outcome)
        if failure is not None:
            raise failure
        return images

    def prune_host(self, images: Sequence[AgentImage], steps: Steps) -> None:
        """Remove this host's older build images of each agent just built (see KEEP_LOCAL):
        only tags of ``<registry host>/<env>/<agent>``, never an image a container uses,
        never anything in the registry. Housekeeping: a failure is a warning."""
        building = {agent.name for agent in self.agents if agent.build is not None}
        docker = Docker(self.runner, timeout=60.0)
        for image in images:
            if not image.built or image.agent not in building:
                continue
            try:
                stale = stale_tags(
                    docker.image_tags(f"{image.registry_host}/{image.repository}"), image.tagged
                )
                removed = docker.remove_images(stale)
            except PalletError as exc:
                steps.warn(
                    f"Could not remove older build images of agent '{image.agent}' "
                    f"from this host: {exc.message}"
                )
                continue
            if removed:
                steps.done(
                    f"Removed {len(removed)} older build images of agent '{image.agent}' "
                    f"from this host (the registry keeps them; the newest {KEEP_LOCAL} stay)"
                )

    def _ensure_one(self, agent: AgentSettings, deadline: float, live: _LiveLine) -> AgentImage:
        started = time.monotonic()
        repository = repository_for(self.env_name, agent.name)
        ahead = self._take_ahead(agent.name)
        docker = Docker(self.runner, timeout=_left(deadline, 60.0, agent.name))
        if ahead is not None:
            tag = ahead.tag
        elif agent.build is not None:
            tag = self.content_tag(agent)
        else:
            assert agent.image is not None
            tag = self._ready_image_tag(docker, agent, deadline)
        tagged = f"{self.registry_host}/{repository}:{tag}"
        if ahead is not None and ahead.error is not None:
            raise self._build_failure(agent, ahead.error, live)
        if ahead is not None and ahead.build_seconds is not None:
            build_seconds = ahead.build_seconds
        else:
            digest = ahead.digest if ahead is not None else None
            if digest is None:
                digest = manifest_digest(
                    self.registry_url, repository, tag, login=self.registry_login
                )
            if digest is not None:
                return AgentImage(agent.name, self.registry_host, repository, tag, digest, False)
            if agent.build is not None:
                self._build(docker, agent, tagged, deadline, live)
            else:
                assert agent.image is not None
                docker.tag(agent.image, tagged)
            build_seconds = time.monotonic() - started
        pushing = time.monotonic()
        live.show(agent.name, "pushing to the local registry")
        try:
            reported = docker.push(
                tagged,
                timeout=_left(deadline, CAP_PUSH, agent.name),
                on_output=live.layer_callback(agent.name),
            )
        except CommandFailed as exc:
            raise OperationFailed(
                f"Pushing agent '{agent.name}' to {self.registry_host} failed: {exc.message}",
                hint="Check `pallet-dev health` and the registry's disk space "
                "(`pallet-dev status`); nothing was deployed.",
            ) from exc
        # the digest `docker push` reports is the one the registry stored for the tag
        digest = reported or manifest_digest(
            self.registry_url, repository, tag, login=self.registry_login
        )
        if digest is None:
            raise OperationFailed(
                f"The registry does not list {tagged} right after the push.",
                hint="See the registry's logs; retry `pallet-dev up`.",
            )
        pushed = time.monotonic() - pushing
        return AgentImage(
            agent.name,
            self.registry_host,
            repository,
            tag,
            digest,
            True,
            build_seconds + pushed,
            build_seconds,
            pushed,
        )

    def _build(
        self, docker: Docker, agent: AgentSettings, tagged: str, deadline: float, live: _LiveLine
    ) -> None:
        try:
            self._run_build(docker, agent, tagged, deadline, live)
        except (CommandFailed, CommandTimeout) as exc:
            raise self._build_failure(agent, exc, live) from exc

    def _run_build(
        self,
        docker: Docker,
        agent: AgentSettings,
        tagged: str,
        deadline: float,
        live: _LiveLine | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        """`docker build`, its lines to ``live`` (by default to the display :meth:`ensure`
        attaches, kept until then)."""
        shown = live or self._relay
        argv = self.build_argv(agent, tagged, legacy=self.legacy_builder(docker))
        docker.build(
            argv,
            timeout=_left(deadline, CAP_BUILD, agent.name),
            on_output=lambda line: shown.show(agent.name, line),
            on_start=on_start,
        )

    def _build_failure(
        self, agent: AgentSettings, exc: BaseException, live: _LiveLine
    ) -> BaseException:
        """The error to raise for a failed build, its output printed first."""
        if isinstance(exc, CommandTimeout):
            return ReadinessTimeout(
                f"Building agent '{agent.name}' did not finish within {exc.timeout:g} s.",
                hint="Retry with a larger --timeout.",
            )
        if isinstance(exc, CommandFailed):
            live.clear()
            lines = exc.stdout.rstrip().splitlines()
            tail = "\n".join(lines[-FAILED_OUTPUT_LINES:])
            cut = len(lines) - FAILED_OUTPUT_LINES
            print(f"--- docker build output of agent '{agent.name}' ---", file=sys.stderr)
            if cut > 0:
                print(f"({cut} earlier lines left out)", file=sys.stderr)
            print(tail, file=sys.stderr)
            print("--- end of build output ---", file=sys.stderr, flush=True)
            return OperationFailed(
                f"Building agent '{agent.name}' failed (docker build exited with code "
                f"{exc.returncode}); nothing was deployed.",
                hint=f"Fix the Dockerfile or sources of '{agent.name}' (the build output is "
                "above); the running version keeps serving.",
            )
        return exc  # the deadline passed first, an interruption: raised as it is

    def _ready_image_tag(self, docker: Docker, agent: AgentSettings, deadline: float) -> str:
        assert agent.image is not None
        image_id = docker.image_id(agent.image)
        if image_id is None:
            try:
                docker.pull(agent.image, timeout=_left(deadline, CAP_PUSH, agent.name))
            except OperationFailed as exc:
                raise OperationFailed(
                    f"Agent '{agent.name}': the image {agent.image} is not on this host and "
                    "cannot be pulled.",
                    hint="Check the name and your network, or build it here (`docker build`) or "
                    "give the agent a build: section instead.",
                ) from exc
            image_id = docker.image_id(agent.image)
        if image_id is None:
            raise OperationFailed(f"Agent '{agent.name}': {agent.image} is missing after a pull.")
        return image_id.removeprefix("sha256:")[:HASH_LENGTH]


def stale_tags(tags: Sequence[str], current: str) -> list[str]:
    """Of an agent's tags on this host (newest first), those :meth:`AgentImages.prune_host`
    removes: none until PRUNE_BATCH have gathered beyond the current one and the
    KEEP_LOCAL newest others, then all of them."""
    older = [tag for tag in tags if tag != current]
    stale = older[KEEP_LOCAL:]
    return stale if len(stale) >= PRUNE_BATCH else []


class _Pending:
    """One agent's early start, as its thread leaves it: :meth:`result` waits for it."""

    def __init__(self, found: _Ahead | None = None) -> None:
        self._found = found
        self._ready = threading.Event()
        if found is not None:
            self._ready.set()

    def set(self, found: _Ahead) -> None:
        self._found = found
        self._ready.set()

    def done(self) -> bool:
        return self._ready.is_set()

    def result(self, timeout: float | None = None) -> _Ahead:
        if not self._ready.wait(timeout) or self._found is None:
            raise TimeoutError("the early start has not ended")
        return self._found


def _left(deadline: float, cap: float, agent: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ReadinessTimeout(
            f"The --timeout deadline passed before agent '{agent}' was built.",
            hint="Retry with a larger --timeout.",
        )
    return min(remaining, cap)


class _LiveLine:
    """Build progress where nothing is drawn (not a terminal, NO_COLOR, quiet)."""

    def show(self, agent: str, line: str) -> None:
        return None

    def layer_callback(self, agent: str) -> Callable[[str], None] | None:
        return None  # nothing drawn: docker's per-layer lines are not read

    def clear(self) -> None:
        return None


class _RichLive(_LiveLine):
    """On a terminal: richout.AgentProgress, one row per agent."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def show(self, agent: str, line: str) -> None:
        self.progress.show(agent, line)

    def layer_callback(self, agent: str) -> Callable[[str], None] | None:
        return lambda line: self.progress.layer(agent, line)

    def clear(self) -> None:
        self.progress.clear()


class _Relay(_LiveLine):
    """Build lines of the early start: held (the last of each agent) until :meth:`ensure`
    attaches its display, then shown there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: _LiveLine | None = None
        self._last: dict[str, str] = {}

    def show(self, agent: str, line: str) -> None:
        with self._lock:
            self._last[agent] = line
            if self._target is not None:
                self._target.show(agent, line)

    def attach(self, target: _LiveLine) -> None:
        with self._lock:
            self._target = target
            for agent, line in self._last.items():
                target.show(agent, line)

    def detach(self) -> None:
        with self._lock:
            self._target = None


def _live_display(steps: Steps, agents: list[str]) -> _LiveLine:
    console = getattr(steps, "console", None)  # richout.LiveSteps draws on a terminal
    if console is None or steps.quiet:
        return _LiveLine()
    from pallet_dev.richout import AgentProgress

    return _RichLive(AgentProgress(console, agents))
