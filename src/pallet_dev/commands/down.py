"""`pallet-dev down [--clean]`: remove what runs; keep data unless --clean."""

from __future__ import annotations

import json
import shutil

from pallet_dev.backends.base import Backend
from pallet_dev.backends.table import backends_for
from pallet_dev.context import AppContext
from pallet_dev.errors import ToolNotFound


def run_down(ctx: AppContext, *, clean: bool, as_json: bool, backend: str | None = None) -> int:
    config = ctx.load_settings(overrides={("backend",): backend})
    steps = ctx.steps()
    removed: list[str] = []
    kept: list[str] = []
    logs_removed: str | None = None
    with ctx.env_lock(config.name):
        for entry in backends_for(config):
            if not ctx.runner.has(entry.owner_tool):
                continue  # without its tool nothing of the backend's can exist
            chosen: Backend = entry.load(config, ctx.runner, ctx.paths)
            try:
                result = chosen.down(clean=clean, steps=steps)
            except ToolNotFound as exc:
                if exc.tool == "docker":
                    continue  # no Docker: no container, volume or cluster can exist
                raise
            removed += result.removed
            kept += result.kept
        ctx.forget_active(config.name)
        data_dir = ctx.paths.env_data_dir(config.name)
        if clean:
            if data_dir.exists():
                shutil.rmtree(data_dir)
                removed.append(f"data folder {data_dir}")
            log_dir = ctx.paths.log_dir
            if log_dir.exists():
                # the log goes last, and nothing is written to it afterwards
                ctx.log.path = None
                shutil.rmtree(log_dir)
                logs_removed = str(log_dir)
        elif data_dir.exists():
            kept.append(f"data folder {data_dir}")
    if as_json:
        print(
            json.dumps({"removed": removed, "kept": kept, "logs_removed": logs_removed}, indent=2)
        )
        return 0
    if not removed:
        print(f"Nothing to remove: no '{config.name}' environment exists.")
    else:
        print(f"Removed: {', '.join(removed)}.")
    if logs_removed:
        print(f"Deleted the logs in {logs_removed}.")
    if kept:
        print(f"Kept: {', '.join(kept)} (use `pallet-dev down --clean` to delete data).")
    return 0
