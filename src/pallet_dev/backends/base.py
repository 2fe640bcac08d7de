"""The small interface both backends share, and the plan/result shapes.

`up`, `down`, `status` and `health` talk to a :class:`Backend`; they never branch
on backend names.
"""

from __future__ import annotations

import abc
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pallet_dev.agents.target import ImageTarget, own_image_target
from pallet_dev.config_sources import UP_TIMEOUT_SECONDS
from pallet_dev.errors import CommandFailed
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.runner import Runner

if TYPE_CHECKING:
    from pallet_dev.agents.spec import AgentDeployment, AgentsState
    from pallet_dev.mirror_prune import PrunePlan
    from pallet_dev.settings import Settings

# seconds for the registry to answer again after the garbage collection
GC_RESTART_WAIT = 60.0
# `registry garbage-collect` on a storage nothing was pushed to yet fails on the folder it
# walks first ("failed to mark: filesystem: Path not found: /docker/registry/v2/repositories",
# or ".../blobs" after an upload that never finished)
_EMPTY_STORAGE = re.compile(r"Path not found: /docker/registry/v2/(repositories|blobs)\b")
NOTHING_TO_COLLECT = "nothing to collect: the registry holds no image yet"


@dataclass(frozen=True)
class PlanStep:
    """One step of `up`: its name and the exact argv it runs ([] for an HTTP wait)."""

    name: str
    argv: list[str]
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "argv": list(self.argv)}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class Plan:
    backend: str
    steps: list[PlanStep]
    kind_config: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "backend": self.backend,
            "steps": [step.to_dict() for step in self.steps],
        }
        if self.kind_config is not None:
            data["kind_config"] = self.kind_config
        if self.notes:
            data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class UpOptions:
    timeout: float = UP_TIMEOUT_SECONDS
    recreate: bool = False
    values_files: tuple[str, ...] = ()
    set_overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpResult:
    backend: str
    endpoint: str
    changed: bool
    actions: list[str]
    # what `up` verified, kept in the environment's state for the next `up`
    # (backends/kind_record.py); None: nothing to keep
    record: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DataLocation:
    """Where a backend keeps the registry's data on this machine."""

    location: str  # as `status` shows it: "volume NAME" or the folder's path
    description: str  # as a sentence names it: "data volume NAME", "data folder PATH"
    size_bytes: int | None


@dataclass(frozen=True)
class BackendStatus:
    """What exists of the environment on one backend.

    ``report`` is the backend's own document, ``backends.<name>`` in `status --json`
    (docs/health-and-status.md); the typed fields are what `status` reads of it.
    """

    exists: bool
    report: dict[str, Any]
    image: str | None = None  # the registry image that runs
    version: str | None = None  # the registry's version, where the backend knows it
    data: DataLocation | None = None  # the registry's data, when it exists
    # the pull-through caches (`mirrors` in `status --json`); None: the backend has none
    mirrors: list[dict[str, Any]] | None = None

    @classmethod
    def unavailable(cls, error: str) -> BackendStatus:
        return cls(False, {"exists": False, "error": error})


@dataclass(frozen=True)
class DownResult:
    backend: str
    removed: list[str]
    kept: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.removed)


@dataclass(frozen=True)
class GcResult:
    """One run of the registry's garbage collection, and how writes were kept out of it."""

    method: str  # a sentence: how no push could race it
    seconds_stopped: float  # how long the registry did not accept requests
    summary: str  # the collector's own count line ("N blobs marked, M ... eligible ...")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seconds_stopped": round(self.seconds_stopped, 3),
            "summary": self.summary,
        }


@dataclass(frozen=True)
class MirrorGc:
    """`gc --mirrors` on one pull-through cache: what goes, how the cache was kept from
    serving meanwhile, and the bytes its storage took before and after."""

    upstream: str
    storage: str  # "volume X" / "folder Y"
    plan: PrunePlan
    steps: tuple[PlanStep, ...] = ()  # a dry run's commands
    method: str = ""  # a sentence: how the cache was stopped ("" when nothing changed)
    seconds_stopped: float = 0.0
    bytes_before: int | None = None
    bytes_after: int | None = None
    bytes_removed: int | None = None  # the files pallet-dev deleted, counted as it went

    @property
    def bytes_freed(self) -> int | None:
        if self.bytes_before is not None and self.bytes_after is not None:
            return max(0, self.bytes_before - self.bytes_after)
        return self.bytes_removed

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"upstream": self.upstream, "storage": self.storage}
        data.update(self.plan.to_dict())
        if self.steps:
            data["steps"] = [step.to_dict() for step in self.steps]
        else:
            data.update(
                method=self.method,
                seconds_stopped=round(self.seconds_stopped, 3),
                bytes_before=self.bytes_before,
                bytes_after=self.bytes_after,
                bytes_freed=self.bytes_freed,
            )
        return data


def gc_summary(output: str) -> str:
    """The count line of `registry garbage-collect`'s output ("N blobs marked, M blobs and
    K manifests eligible for deletion"; else its last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "blobs marked" in line:
            return line
    return lines[-1][:300] if lines else ""


def collection_output(collect: Callable[[], str]) -> str:
    """Run `registry garbage-collect` (``collect``: its output); an empty storage is
    nothing to collect, not a failure."""
    try:
        return collect()
    except CommandFailed as exc:
        if _EMPTY_STORAGE.search(f"{exc.stdout}\n{exc.stderr}") is None:
            raise
        return NOTHING_TO_COLLECT


class Backend(abc.ABC):
    """A way to run the registry: a Docker container, or a chart in a kind cluster."""

    name: str = ""
    # the kind backend deploys Helm charts (chart.values, --set apply); Docker does not
    uses_chart: bool = False

    def __init__(self, config: Settings, runner: Runner, paths: Paths) -> None:
        self.config = config
        self.runner = runner
        self.paths = paths

    @property
    def endpoint(self) -> str:
        """Where clients on this host reach the registry."""
        return self.config.registry_url

    @property
    def network_pull_host(self) -> str | None:
        """Where containers on the environment's own network pull from, when the host's
        name does not work there (None: ``localhost:<port>`` works everywhere)."""
        return None

    def as_last_up(self, options: UpOptions, record: Mapping[str, Any]) -> None:
        """`up` kept the registry as the last `up` verified it (``record``, still holding;
        only agents change): load what deploying the agents takes, without a subprocess."""
        return None

    def await_registry(self, steps: Steps, deadline: float, timeout: float, hint: str) -> None:
        """Wait (until the monotonic ``deadline``) for `/v2/` to answer as a registry."""
        from pallet_dev.errors import ReadinessTimeout
        from pallet_dev.probe import wait_for_registry

        with steps.step(f"Waiting for the registry at {self.endpoint}/v2/"):
            result = wait_for_registry(self.endpoint, deadline)
            if not result.healthy:
                raise ReadinessTimeout(
                    f"The registry did not answer at {self.endpoint}/v2/ within "
                    f"{timeout:g} s ({result.error}).",
                    hint=hint,
                )

    def await_registry_again(self, steps: Steps, *, hint: str) -> None:
        """After the garbage collection: until the registry answers as before."""
        self.await_registry(steps, time.monotonic() + GC_RESTART_WAIT, GC_RESTART_WAIT, hint)

    @abc.abstractmethod
    def plan_up(self, options: UpOptions) -> Plan:
        """The steps `up` would run from nothing; runs no subprocess."""

    @abc.abstractmethod
    def up(self, options: UpOptions, steps: Steps) -> UpResult:
        """Converge to a healthy registry; idempotent."""

    @abc.abstractmethod
    def down(self, *, clean: bool, steps: Steps) -> DownResult:
        """Remove what runs; with ``clean`` also the data. Succeeds when nothing exists."""

    @abc.abstractmethod
    def status(self) -> BackendStatus:
        """What exists for this backend; a failed query is recorded in it, not raised."""

    # --- gc: the registry's garbage collection, with no push racing it ---------------------
    @abc.abstractmethod
    def registry_data_size(self) -> int | None:
        """Bytes the registry's data takes on disk now (None when unknown)."""

    @abc.abstractmethod
    def plan_collect_garbage(self, *, delete_untagged: bool) -> list[PlanStep]:
        """The steps :meth:`collect_garbage` runs; runs no subprocess."""

    @abc.abstractmethod
    def collect_garbage(self, *, delete_untagged: bool, steps: Steps, timeout: float) -> GcResult:
        """Run `registry garbage-collect` on the registry's data while nothing can write to
        it, then leave the registry as it was (answering again when it ran before)."""

    # --- gc --mirrors: the pull-through caches' storage, each cache stopped meanwhile ---
    def plan_clean_mirrors(self, *, older_than: timedelta | None, now: datetime) -> list[MirrorGc]:
        """What `gc --mirrors` would remove from each cache, and the commands; no change."""
        return []

    def clean_mirrors(
        self, *, older_than: timedelta | None, now: datetime, steps: Steps, timeout: float
    ) -> list[MirrorGc]:
        """Remove from each cache the repositories not fetched within ``older_than`` (all
        without it) and the blobs no kept repository links, while the cache is stopped."""
        return []

    # --- agents (the Pallet services), deployed after the registry answers ----------------
    @property
    @abc.abstractmethod
    def agent_registry_address(self) -> str:
        """The registry's address as seen from inside an agent (``PALLET_REGISTRY``)."""

    def agent_image_target(self) -> ImageTarget:
        """The environment's own registry, images under ``<env>/``."""
        return own_image_target(self.config)

    @abc.abstractmethod
    def plan_agents(self, deployments: list[AgentDeployment], options: UpOptions) -> list[PlanStep]:
        """The steps that deploy the agents; runs no subprocess."""

    def look_ahead_agents(self) -> None:
        """While the agents' images build: start reading what `deploy_agents` will need
        (changes nothing; by default nothing)."""
        return None

    @abc.abstractmethod
    def deploy_agents(
        self, deployments: list[AgentDeployment], deadline: float, steps: Steps
    ) -> AgentsState:
        """Run every agent by digest and wait until each answers on its health path."""

    def roll_out_images(
        self,
        deployments: list[AgentDeployment],
        changed: list[str],
        deadline: float,
        steps: Steps,
    ) -> AgentsState:
        """`dev`: only the images of the ``changed`` agents moved. By default a full deploy
        (which touches nothing else); a backend may have a quicker way."""
        return self.deploy_agents(deployments, deadline, steps)

    @abc.abstractmethod
    def agents_status(self) -> list[dict[str, Any]]:
        """Each deployed agent: image digest, ready/desired replicas, restarts, endpoint."""

    @abc.abstractmethod
    def agent_logs_argv(self, agent: str, *, follow: bool, tail: int | None) -> list[str]:
        """The command that prints an agent's logs."""
