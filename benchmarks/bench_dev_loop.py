"""The inner loop: from a file write to the first response of the new version.

    python benchmarks/bench_dev_loop.py [--backend docker|kind|both] [--edits 20] [--blocks 4]

In a copy of examples/pallet and a throw-away environment ``pdtest-loop-<random>`` (free
port, PALLET_DEV_HOME and KUBECONFIG in a temporary folder), it starts `pallet-dev dev
--json`, then edits the packer agent ``--edits`` times, each time timing the write until
packer's /cgi-bin/version answers with the new text, and reads the cycle's own phase
split (detect, build, push, rollout) from its NDJSON record. Then the same edits by hand,
in a loop, side by side: `docker build` + `docker push` + (docker) `docker rm -f` +
`docker run`, (kind) `kubectl set image` + `kubectl rollout status`, then polling. Both
are polled from the moment they say they are done (the cycle's record; the last
command's return) until the new text answers. The two run in alternating blocks (``--blocks``,
each a fresh `pallet-dev dev`), so drift in the machine's speed weighs on both alike.

Budgets (issue: the inner loop): kind p50 <= 3.0 s and <= 1.10x by hand; docker likewise
against the raw docker commands. A report, not a test: exit code 0 (and 0 with a reason
when the machine cannot run it); it deletes only what it made.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cli_env import user_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "pallet"
BASE_IMAGE = "pallet-dev-examples/busybox:local"
BUDGET_P50_S = 3.0
BUDGET_RATIO = 1.10
PROXY = "/api/v1/namespaces/pallet/services/packer:8080/proxy/cgi-bin/version"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def http_text(url: str) -> str:
    # one plain GET per poll, as `health` does (http.client: no proxy or redirect handling)
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    # a short timeout: a request sent while the container is replaced can hang on the
    # removed container's address; the next poll must not wait for it
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=0.25)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Loop:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.tmp = Path(tempfile.mkdtemp(prefix="pallet-bench-loop-"))
        self.project = self.tmp / "pallet"
        shutil.copytree(EXAMPLES, self.project)
        self.name = f"pdtest-loop-{secrets.token_hex(3)}"
        self.port = free_port()
        self.env = user_env(
            PALLET_DEV_HOME=str(self.tmp / "home"),
            PALLET_DEV_NAME=self.name,
            PALLET_DEV_BACKEND=backend,
            PALLET_DEV_REGISTRY_PORT=str(self.port),
            KUBECONFIG=str(self.tmp / "kubeconfig"),
            NO_COLOR="1",
        )
        self.cli = [sys.executable, "-m", "pallet_dev"]
        kubeconfig = self.tmp / "home" / "state" / f"{self.name}.kubeconfig"
        self.kubectl = [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "--context",
            f"kind-{self.name}",
        ]
        self.version_file = self.project / "agents" / "packer" / "VERSION"
        self.url = ""

    def serves(self, text: str) -> bool:
        try:
            if self.backend == "docker":
                return text in http_text(self.url)
            out = subprocess.run([*self.kubectl, "get", "--raw", PROXY], capture_output=True,
                                 text=True, timeout=10).stdout  # fmt: skip
            return text in out
        except (OSError, http.client.HTTPException):
            return False

    def wait_serving(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self.serves(text):
            if time.monotonic() > deadline:
                raise SystemExit(f"{text} never answered")
            time.sleep(0.02)

    def find_packer(self) -> None:
        doc = json.loads(run([*self.cli, "health", "--json"], self.env, self.project))
        health_url = {a["name"]: a["url"] for a in doc["agents"]}["packer"]
        self.url = health_url.replace("/healthz", "/cgi-bin/version")

    def with_pallet_dev(
        self, edits: int, first: int = 0
    ) -> tuple[list[float], list[dict[str, Any]]]:
        proc = subprocess.Popen([*self.cli, "dev", "--json", "packer"], cwd=self.project,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)  # fmt: skip
        records: queue.Queue[dict[str, Any]] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                records.put(json.loads(line))

        threading.Thread(target=read, daemon=True).start()
        try:
            while records.get(timeout=900).get("event") != "watching":
                pass
            self.find_packer()
            times, cycles = [], []
            for n in range(first, first + edits):
                text = f"packer-loop-{n}-{secrets.token_hex(2)}"
                started = time.perf_counter()
                self.version_file.write_text(text + "\n")
                # polled once the cycle line says it is done, as the commands by hand are
                # polled once they return: a poll running during the swap can hang on the
                # removed container for its whole timeout, and kind's polls (a kubectl
                # each) would take a core from the build on a 2-core machine
                cycle = records.get(timeout=120)
                self.wait_serving(text)
                times.append(time.perf_counter() - started)
                if not cycle.get("ok"):
                    raise SystemExit(f"the cycle failed: {cycle.get('error')}")
                cycles.append(cycle)
                time.sleep(0.3)  # let the watcher settle before the next edit
            return times, cycles
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    def by_hand(self, edits: int, first: int = 0) -> list[float]:
        context = self.project / "agents" / "packer"
        container = f"{self.name}-agent-packer"
        times = []
        for n in range(first, first + edits):
            text = f"packer-hand-{n}-{secrets.token_hex(2)}"
            tag = f"localhost:{self.port}/{self.name}/packer:hand-{n}"
            started = time.perf_counter()
            self.version_file.write_text(text + "\n")
            run(["docker", "build", "-q", "-t", tag, str(context)], self.env, self.project)
            run(["docker", "push", "-q", tag], self.env, self.project)
            if self.backend == "docker":
                run(["docker", "rm", "-f", container], self.env, self.project)
                host = self.url.split("/")[2]
                run(["docker", "run", "-d", "--name", container, "--network", self.name,
                     "-p", f"{host}:8080", tag], self.env, self.project)  # fmt: skip
            else:
                ns = [*self.kubectl, "-n", "pallet"]
                run([*ns, "set", "image", "deployment/packer", f"packer={tag}"], self.env,
                    self.project)  # fmt: skip
                run([*ns, "rollout", "status", "deployment/packer", "--timeout=300s"], self.env,
                    self.project)  # fmt: skip
            self.wait_serving(text)
            times.append(time.perf_counter() - started)
        return times

    def report(self, edits: int, blocks: int) -> list[str]:
        lines = [
            f"[{self.backend}] {edits} edits of packer, write -> first response of the new version"
        ]
        try:
            # in alternating blocks, so a machine that slows down or speeds up during the
            # run weighs on both sides alike (`dev` is stopped while the edits by hand run)
            ours, cycles, hand = [], [], []
            per = max(1, edits // blocks)
            for block in range(max(1, edits // per)):
                timed, records = self.with_pallet_dev(per, block * per)
                ours += timed
                cycles += records
                hand += self.by_hand(per, block * per)
        finally:
            # the hand-run container carries no pallet-dev labels: remove it by name
            subprocess.run(["docker", "rm", "-f", f"{self.name}-agent-packer"],
                           capture_output=True, timeout=60)  # fmt: skip
            subprocess.run([*self.cli, "down", "--clean"], env=self.env, cwd=self.project,
                           capture_output=True, timeout=600)  # fmt: skip
            shutil.rmtree(self.tmp, ignore_errors=True)
        p50, p95 = statistics.median(ours), percentile(ours, 0.95)
        h50, h95 = statistics.median(hand), percentile(hand, 0.95)
        ratio = p50 / h50
        lines.append(
            f"  pallet-dev dev: p50 {p50:5.2f} s  p95 {p95:5.2f} s  "
            f"budget p50 {BUDGET_P50_S} s  {'PASS' if p50 <= BUDGET_P50_S else 'OVER'}"
        )
        lines.append(f"  by hand:        p50 {h50:5.2f} s  p95 {h95:5.2f} s")
        lines.append(
            f"  ratio p50: {ratio:.2f}  budget {BUDGET_RATIO}  "
            f"{'PASS' if ratio <= BUDGET_RATIO else 'OVER'}"
        )
        ok = [c for c in cycles if c.get("ok")]
        if ok:
            split = {
                k: statistics.median(float(c[k]) for c in ok)
                for k in ("detect", "build", "push", "rollout")
            }
            answer = statistics.median(ours) - statistics.median(float(c["seconds"]) for c in ok)
            lines.append(
                "  phase medians: "
                + ", ".join(f"{k} {v:.2f}" for k, v in split.items())
                + f", first response after the cycle {max(0.0, answer):.2f} s"
            )
        return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["docker", "kind", "both"], default="docker")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks of edits")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        print("bench_dev_loop: docker is not installed; nothing measured")
        return 0
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode:
        subprocess.run(["bash", str(EXAMPLES / "base" / "build-base-image.sh")], check=True)
    for backend in ["docker", "kind"] if args.backend == "both" else [args.backend]:
        if backend == "kind" and not all(shutil.which(t) for t in ("kind", "helm", "kubectl")):
            print("[kind] skipped: kind, helm or kubectl is not installed")
            continue
        print("\n".join(Loop(backend).report(args.edits, args.blocks)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
