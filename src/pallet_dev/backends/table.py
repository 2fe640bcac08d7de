"""The backends pallet-dev knows: name → class, what each needs, and why it is unavailable.

A new backend is one :class:`BackendEntry` in :data:`BACKENDS` and one module with a
:class:`~pallet_dev.backends.base.Backend` subclass. Commands never test backend names:
`up` asks :func:`select_backend`, `down` and `status` walk :func:`backends_for`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from pallet_dev.errors import DaemonUnavailable, PrerequisiteError, ToolNotFound, UsageError
from pallet_dev.runner import INSTALL_HINTS, Runner

if TYPE_CHECKING:
    from pallet_dev.backends.base import Backend
    from pallet_dev.settings import Settings
    from pallet_dev.paths import Paths

DAEMON = "a reachable Docker daemon"


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str  # imported only when the backend is used
    class_name: str
    needs: tuple[str, ...]  # executables on PATH
    # without this executable nothing of the backend's can exist (down and status skip it)
    owner_tool: str
    title: str  # as a sentence names it
    needs_daemon: bool = True
    # `backend: auto` may pick it (a shared cluster only ever by name)
    auto: bool = True

    def load(self, config: Settings, runner: Runner, paths: Paths) -> Backend:
        cls: type[Backend] = getattr(import_module(self.module), self.class_name)
        return cls(config, runner, paths)

    def missing(self, runner: Runner, *, check_daemon: bool) -> list[str]:
        """What this machine lacks for the backend (empty: it can run here)."""
        missing = [tool for tool in self.needs if not runner.has(tool)]
        if self.needs_daemon and check_daemon and "docker" not in missing:
            from pallet_dev.tools.docker import Docker

            try:
                Docker(runner).ping()
            except DaemonUnavailable:
                missing.append(DAEMON)
        return missing

    def prerequisite_error(self, missing: list[str]) -> PrerequisiteError:
        """The error for an explicitly requested backend that cannot run here."""
        tools = [tool for tool in missing if tool in INSTALL_HINTS]
        hints = " ".join(INSTALL_HINTS[tool] for tool in tools)
        if len(missing) == 1 and tools:
            return ToolNotFound(tools[0], hint=f"The {self.title} backend needs it. {hints}")
        if missing == [DAEMON]:
            return DaemonUnavailable(
                f"The {self.title} backend needs a running Docker daemon and none answers.",
                hint="Start Docker, then retry (`pallet-dev doctor` checks everything).",
            )
        verb = "is" if len(missing) == 1 else "are"
        return PrerequisiteError(
            f"The {self.title} backend needs {', '.join(missing)}, which {verb} missing.",
            hint=(hints + " " if hints else "") + "Or use `--prefer-docker`.",
        )


DOCKER = BackendEntry(
    "docker",
    "pallet_dev.backends.docker",
    "DockerBackend",
    ("docker",),
    owner_tool="docker",
    title="Docker",
)
KIND = BackendEntry(
    "kind",
    "pallet_dev.backends.kind",
    "KindBackend",
    ("docker", "kind", "helm", "kubectl"),
    owner_tool="kind",
    title="kind",
)
# a namespace of a team's existing cluster: only with `backend: cluster` (--backend cluster)
CLUSTER = BackendEntry(
    "cluster",
    "pallet_dev.backends.cluster",
    "ClusterBackend",
    ("docker", "helm", "kubectl"),
    owner_tool="kubectl",
    title="cluster",
    auto=False,
)
# `backend: auto` tries the `auto` ones in order; the fallback needs only Docker
BACKENDS: dict[str, BackendEntry] = {entry.name: entry for entry in (KIND, DOCKER, CLUSTER)}
FALLBACK = DOCKER


def entry_for(name: str) -> BackendEntry:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise UsageError(f"Unknown backend '{name}'.", hint=f"Use one of: {known}.") from None


def make_backend(name: str, config: Settings, runner: Runner, paths: Paths) -> Backend:
    return entry_for(name).load(config, runner, paths)


def active_backend_name(config: Settings, active: Mapping[str, Any]) -> str:
    """The backend `up` last used (``active``: the state file), else the configured one, and
    with `auto` the fallback."""
    recorded = active.get("backend")
    if isinstance(recorded, str) and recorded:
        return recorded
    return config.backend if config.backend != "auto" else FALLBACK.name


def backends_for(config: Settings) -> list[BackendEntry]:
    """What `down` and `status` look at: the configured backend, or with `auto` every one
    (an environment may have been brought up with either)."""
    if config.backend == "auto":
        others = (e for e in BACKENDS.values() if e is not FALLBACK and e.auto)
        return [FALLBACK, *others]
    return [entry_for(config.backend)]


@dataclass(frozen=True)
class Selection:
    backend: Backend
    notice: str | None = None  # one line: why auto fell back


def select_backend(
    config: Settings,
    runner: Runner,
    paths: Paths,
    *,
    prefer_docker: bool = False,
    dry_run: bool = False,
) -> Selection:
    """Resolve ``config.backend`` (auto or a name in :data:`BACKENDS`) to a backend.

    An explicit backend that cannot run here is an error naming what is missing;
    `auto` takes the first that can, and says why it passed over the others.
    ``dry_run`` checks tools on PATH only (no subprocess, so the plan changes nothing).
    """
    requested = FALLBACK.name if prefer_docker else config.backend
    if requested != "auto":
        entry = entry_for(requested)
        if entry is not FALLBACK:
            missing = entry.missing(runner, check_daemon=not dry_run)
            if missing:
                raise entry.prerequisite_error(missing)
        return Selection(entry.load(config, runner, paths))
    passed_over: list[str] = []
    for entry in BACKENDS.values():
        if entry is FALLBACK:
            break
        if not entry.auto:
            continue
        missing = entry.missing(runner, check_daemon=not dry_run)
        if not missing:
            return Selection(entry.load(config, runner, paths))
        if "docker" in missing:
            raise ToolNotFound("docker", hint=INSTALL_HINTS["docker"])
        passed_over.append(f"{entry.name} backend unavailable (missing: {', '.join(missing)})")
    notice = None
    if passed_over:
        notice = f"{'; '.join(passed_over)}; using the {FALLBACK.title} backend instead."
    return Selection(FALLBACK.load(config, runner, paths), notice)
