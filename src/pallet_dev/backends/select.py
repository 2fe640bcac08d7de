"""Choosing the backend: kind when everything it needs is here, else Docker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pallet_dev.backends.base import Backend
from pallet_dev.errors import DaemonUnavailable, PrerequisiteError, ToolNotFound
from pallet_dev.paths import Paths
from pallet_dev.runner import INSTALL_HINTS, Runner

if TYPE_CHECKING:
    from pallet_dev.settings import Settings

KIND_TOOLS = ("docker", "kind", "helm", "kubectl")


@dataclass(frozen=True)
class Selection:
    backend: Backend
    notice: str | None = None  # one line: why auto fell back to Docker


def missing_kind_prerequisites(runner: Runner, *, check_daemon: bool) -> list[str]:
    missing = [tool for tool in KIND_TOOLS if not runner.has(tool)]
    if check_daemon and "docker" not in missing:
        from pallet_dev.tools.docker import Docker

        try:
            Docker(runner).ping()
        except DaemonUnavailable:
            missing.append("a reachable Docker daemon")
    return missing


def make_backend(name: str, config: Settings, runner: Runner, paths: Paths) -> Backend:
    if name == "kind":
        from pallet_dev.backends.kind import KindBackend

        return KindBackend(config, runner, paths)
    from pallet_dev.backends.docker import DockerBackend

    return DockerBackend(config, runner, paths)


def select_backend(
    config: Settings,
    runner: Runner,
    paths: Paths,
    *,
    prefer_docker: bool = False,
    dry_run: bool = False,
) -> Selection:
    """Resolve ``config.backend`` (auto | kind | docker) to a backend.

    ``dry_run`` checks tools on PATH only (no subprocess, so the plan changes nothing).
    """
    requested = "docker" if prefer_docker else config.backend
    if requested == "docker":
        return Selection(make_backend("docker", config, runner, paths))
    missing = missing_kind_prerequisites(runner, check_daemon=not dry_run)
    if requested == "kind":
        if missing:
            tools = [tool for tool in missing if tool in INSTALL_HINTS]
            hints = " ".join(INSTALL_HINTS[tool] for tool in tools)
            if len(missing) == 1 and tools:
                raise ToolNotFound(tools[0], hint=f"The kind backend needs it. {hints}")
            if missing == ["a reachable Docker daemon"]:
                raise DaemonUnavailable(
                    "The kind backend needs a running Docker daemon and none answers.",
                    hint="Start Docker, then retry (`pallet-dev doctor` checks everything).",
                )
            verb = "is" if len(missing) == 1 else "are"
            raise PrerequisiteError(
                f"The kind backend needs {', '.join(missing)}, which {verb} missing.",
                hint=(hints + " " if hints else "") + "Or use `--prefer-docker`.",
            )
        return Selection(make_backend("kind", config, runner, paths))
    if missing:
        if "docker" in missing:
            raise ToolNotFound("docker", hint=INSTALL_HINTS["docker"])
        notice = (
            f"kind backend unavailable (missing: {', '.join(missing)}); "
            "using the Docker backend instead."
        )
        return Selection(make_backend("docker", config, runner, paths), notice)
    return Selection(make_backend("kind", config, runner, paths))
