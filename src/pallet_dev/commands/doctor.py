"""`pallet-dev doctor [--json] [--backend auto|kind|docker|cluster]`: every prerequisite at once.

Each check yields :class:`CheckResult` objects (name, ok, the backends that need it,
what was found, the problem and its fix); all run in parallel threads, and a check
that breaks becomes a failed result, never a crash. The checks and the table of their
ids are in ``doctor_checks`` (the tools) and ``doctor_host`` (port, inotify, disk,
preflights); this module runs them and renders the report.

What each backend needs (docs/health-and-status.md has the full table):

- ``docker``: the docker CLI, a reachable Docker daemon >= 20.10, the registry port.
- ``kind``: the same, plus kind >= v0.20, helm 3.x/4.x and kubectl.
- ``cluster``: docker, helm and kubectl; the context answers, the account's RBAC
  permissions in the namespace, the team registry answers and takes a push (doctor_cluster).
- ``auto``: what the Docker fallback needs, because `up` falls back to Docker when
  kind's tools are missing; kind's prerequisites are reported as warnings, along
  with the backend `up` would pick.

Advisory checks warn and never block: kubectl version skew, kind older than the
pinned release, Linux inotify limits, free disk. Exit 0 when nothing blocks the
chosen backend, 3 (errors.EXIT_PREREQUISITE) otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pallet_dev.commands.doctor_checks import (
    Check,
    CheckResult,
    DoctorInputs,
    check_docker,
    check_helm,
    check_kind,
    check_kubectl,
    needed_by,
)
from pallet_dev.commands.doctor_cluster import check_cluster
from pallet_dev.commands.doctor_host import (
    check_disk,
    check_docker_mirror,
    check_host,
    check_inotify,
    check_port,
)
from pallet_dev.config import Config, load_config
from pallet_dev.context import AppContext
from pallet_dev.errors import EXIT_OK, EXIT_PREREQUISITE, ConfigError
from pallet_dev.output import use_color
from pallet_dev.settings import Settings

__all__ = [
    "CHECKS",
    "CheckResult",
    "DoctorInputs",
    "check_disk",
    "check_docker",
    "check_inotify",
    "render_report",
    "run_checks",
    "run_doctor",
]

SCHEMA_VERSION = 1


CHECKS: tuple[Check, ...] = (
    check_docker,
    check_kind,
    check_helm,
    check_kubectl,
    check_port,
    check_inotify,
    check_disk,
    check_host,
    check_cluster,
    check_docker_mirror,
)


def run_checks(inputs: DoctorInputs, checks: tuple[Check, ...] = CHECKS) -> list[CheckResult]:
    """Every check in parallel; results in the order of ``checks``."""
    from concurrent.futures import ThreadPoolExecutor

    def guarded(check: Check) -> list[CheckResult]:
        try:
            return check(inputs)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            return [CheckResult.crashed(check.__name__.removeprefix("check_"), exc)]

    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return [result for results in pool.map(guarded, checks) for result in results]


def config_result(
    config_file: Path | None, backend: str | None = None
) -> tuple[Settings, CheckResult]:
    """Load the config (with `--backend`, as `up` would); a broken one is a reported problem
    and the defaults stand in."""
    from pallet_dev.settings import from_config

    try:
        config, path = load_config(config_file, overrides={("backend",): backend})
    except ConfigError as exc:
        try:  # the environment's settings without the file, so ports and names still fit
            fallback, _ = load_config(Path(os.devnull))
        except ConfigError:
            fallback = Config()
        fix = exc.hint or "Fix it; the other checks ran without the file."
        return from_config(fallback), CheckResult.failed("config", exc.message, fix)
    found = str(path) if path else "defaults (no pallet-dev.yaml here or above)"
    return from_config(config, path), CheckResult.passed("config", found)


def selected_backend(results: list[CheckResult]) -> str | None:
    """What `up` with backend auto would pick, by these results (the table's order)."""
    from pallet_dev.backends.table import BACKENDS

    for name, entry in BACKENDS.items():
        if not entry.auto:
            continue
        if all(r.ok or r.advisory for r in results if needed_by(r.required_for, name)):
            return name
    return None


def doctor_document(
    results: list[CheckResult], *, backend: str, started: float, checked_at: str
) -> dict[str, Any]:
    levels = [result.level(backend) for result in results]
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": backend,
        "ok": "error" not in levels,
        "selected_backend": selected_backend(results) if backend == "auto" else None,
        "platform": sys.platform,
        "checked_at": checked_at,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "errors": levels.count("error"),
        "warnings": levels.count("warning"),
        "checks": [result.to_dict(backend) for result in results],
    }


def render_report(document: dict[str, Any], color: bool) -> str:
    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    marks = {"ok": paint("✓", "32"), "warning": paint("!", "33"), "error": paint("✗", "31")}
    backend = document["backend"]
    lines = [f"Prerequisites for the {backend} backend:"]
    width = max(len(check["title"]) for check in document["checks"])
    for check in document["checks"]:
        seen = " ".join(part for part in (check["version"], check["found"]) if part)
        text = check["problem"] if check["problem"] else seen
        lines.append(f" {marks[check['level']]} {check['title']:<{width}}  {text}".rstrip())
        if check["problem"] and seen:
            lines.append(f"   {'':<{width}}  found: {seen}")
        if check["fix"] and not check["ok"]:
            lines.append(f"   {'':<{width}}  fix: {check['fix']}")
    lines.append("")
    lines.append(_summary(document))
    return "\n".join(lines)


def _summary(document: dict[str, Any]) -> str:
    backend, errors, warnings = document["backend"], document["errors"], document["warnings"]
    also = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    if errors:
        return (
            f"{errors} problem{'s' if errors != 1 else ''} block{'s' if errors == 1 else ''} "
            f"the {backend} backend{also}: fix {'it' if errors == 1 else 'them'} and run "
            "`pallet-dev doctor` again."
        )
    if backend != "auto":
        return f"Ready for the {backend} backend{also}."
    from pallet_dev.backends.table import BACKENDS, entry_for

    selected, preferred = entry_for(document["selected_backend"]), next(iter(BACKENDS.values()))
    if selected == preferred:
        return f"Ready: `pallet-dev up` will use the {selected.title} backend{also}."
    return (
        f"Ready: `pallet-dev up` will use the {selected.title} backend; the {preferred.title} "
        f"backend lacks what is marked above{also}."
    )


def run_doctor(ctx: AppContext, *, as_json: bool, backend: str | None) -> int:
    started = time.perf_counter()
    checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config, config_check = config_result(ctx.config_file, backend)
    chosen = backend or config.backend
    inputs = DoctorInputs(config=config, runner=ctx.runner, paths=ctx.paths, backend=chosen)
    results = [config_check, *run_checks(inputs)]
    document = doctor_document(results, backend=chosen, started=started, checked_at=checked_at)
    ctx.log.write(
        "doctor",
        backend=chosen,
        ok=document["ok"],
        errors=[c["name"] for c in document["checks"] if c["level"] == "error"],
        warnings=[c["name"] for c in document["checks"] if c["level"] == "warning"],
        duration_ms=document["duration_ms"],
    )
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        print(render_report(document, use_color(sys.stdout)))
    return EXIT_OK if document["ok"] else EXIT_PREREQUISITE
