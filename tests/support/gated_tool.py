"""Signals that land at a moment set by what pallet-dev has done, never by a delay.

A fixed delay lands before start-up on a busy machine and after the last step on a fast
one. Instead a test holds one chosen call of a real tool (a shim first on PATH), or reads
pallet-dev's stderr up to a step's ✓ line, and signals then.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path


class GatedTool:
    """A CLI that holds its first call whose arguments contain ``hold`` until released,
    and records that call's pid; every other call runs the real tool at once.

    ``hold=""`` holds the very first call.
    """

    def __init__(self, folder: Path, tool: str, hold: str = "", real: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tool, self.hold = tool, hold
        self.calls, self.released = folder / f"{tool}.held", folder / f"{tool}.released"
        real = real or shutil.which(tool)
        assert real, f"no {tool} on PATH"
        shim = folder / tool
        shim.write_text(
            "#!/bin/sh\n"
            f'case "$*" in *{shlex.quote(hold)}*)\n'
            f'  if [ ! -e "{self.calls}" ]; then\n'
            f'    echo "$$ $*" > "{self.calls}"\n'
            f'    while [ ! -e "{self.released}" ]; do sleep 0.02; done\n'
            "  fi;;\n"
            "esac\n"
            f'exec {shlex.quote(real)} "$@"\n'
        )
        shim.chmod(0o755)
        self.folder = folder

    def path(self, rest: str | None = None) -> str:
        """PATH with this shim (and any other in its folder) first."""
        return f"{self.folder}{os.pathsep}{rest if rest is not None else os.environ['PATH']}"

    def env(self) -> dict[str, str]:
        """pallet-dev's environment for a run with this shim: its PATH, and every docker
        read through the CLI too (not the daemon's socket), so a held read is reached."""
        return {"PATH": self.path(), "PALLET_DEV_DOCKER_API": "0"}

    def wait_for_call(self, proc: subprocess.Popen[str], timeout: float = 120) -> int:
        """The pid of the held call, once pallet-dev has made it."""
        deadline = time.monotonic() + timeout
        while not self.calls.exists() or not self.calls.read_text().endswith("\n"):
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"ended before its {self.tool} {self.hold!r} call: {err}")
            assert time.monotonic() < deadline, f"no {self.tool} {self.hold!r} call"
            time.sleep(0.01)
        return int(self.calls.read_text().split()[0])

    @property
    def held(self) -> bool:
        return self.calls.exists()

    def release(self) -> None:
        self.released.touch()


def wait_for_line(proc: subprocess.Popen[str], marker: str) -> str:
    """stderr up to the first line holding ``marker`` (the step it names is done)."""
    assert proc.stderr is not None
    seen = ""
    while marker not in seen.rpartition("\n")[0]:
        line = proc.stderr.readline()
        assert line, f"no {marker!r} line: {seen}"
        seen += line
    return seen


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
