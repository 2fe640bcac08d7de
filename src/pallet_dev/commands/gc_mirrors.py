"""`gc --mirrors`: the pull-through caches' part of `gc` (the backend does the work).

Without ``--older-than`` every cache is emptied (it refills from its upstream); with it,
the repositories not fetched or re-checked against the upstream within DURATION go, and
the blobs no kept repository links (mirror_prune.py says what "fetched" means). Each
cache is stopped meanwhile, and the backend says how; ``--dry-run`` changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pallet_dev.backends.base import Backend, MirrorGc
from pallet_dev.output import Steps, megabytes, plural

MIRRORS_TIMEOUT = 1200.0


def gc_mirrors(
    backend: Backend,
    *,
    older_than: timedelta | None,
    now: datetime,
    dry_run: bool,
    steps: Steps,
) -> list[MirrorGc]:
    if dry_run:
        return backend.plan_clean_mirrors(older_than=older_than, now=now)
    return backend.clean_mirrors(
        older_than=older_than, now=now, steps=steps, timeout=MIRRORS_TIMEOUT
    )


def render_mirrors(reports: list[dict[str, Any]], *, dry_run: bool, older_than: str) -> list[str]:
    what = f"not fetched within {older_than}" if older_than else "everything (no --older-than)"
    lines = [f"Pull-through caches: {what}"]
    if not reports:
        lines.append("  no caches configured")
    verb = "would delete" if dry_run else "deleted"
    for report in reports:
        going = [r for r in report["repositories"] if r["action"] == "delete"]
        lines.append(
            f"  {report['upstream']} ({report['storage']}): "
            f"{plural(len(report['repositories']), 'repository', 'repositories')}, {verb} "
            f"{len(going)} and {plural(report['blobs'], 'blob')} "
            f"({megabytes(report['bytes'])})"
        )
        lines += [f"    - {r['name']}  last fetched {r['last_fetched'] or '?'}" for r in going]
        if dry_run:
            for step in report.get("steps") or []:
                command = " ".join(step["argv"]) if step["argv"] else "(pallet-dev itself)"
                lines.append(f"    {step['name']}: {command}")
        elif report["method"]:
            lines.append(f"    {report['method']} ({report['seconds_stopped']:.1f} s).")
            lines.append(
                f"    Freed {megabytes(report['bytes_freed'])} (storage "
                f"{megabytes(report['bytes_before'])} before, "
                f"{megabytes(report['bytes_after'])} after)."
            )
        else:
            lines.append("    nothing to delete; the cache was not stopped.")
    return lines
