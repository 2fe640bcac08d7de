"""`pallet-dev dev --json` as a child process whose NDJSON records a test waits for."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class DevProcess:
    def __init__(self, environ: dict[str, str], cwd: Path, cycle_timeout: int = 30) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pallet_dev", "dev", "--json", "--cycle-timeout",
             str(cycle_timeout)],
            cwd=cwd, env={**environ, "NO_COLOR": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.records: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def next(self, event: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                record = self.records.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "dev exited:\n" + "".join(self.stderr)
                continue
            if record.get("event") == event:
                return record
        raise AssertionError(f"no {event} record in {timeout} s:\n" + "".join(self.stderr))

    def stop(self) -> int:
        """SIGTERM, as a terminal's Ctrl-C or a supervisor would; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)
