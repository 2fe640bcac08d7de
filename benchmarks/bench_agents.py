"""Speed and footprint of the agents (the three example agents), against issue budgets.

    python benchmarks/bench_agents.py [--backend docker|kind|both] [--runs 5] [--pairs 5]

For each backend it copies examples/pallet into a temporary folder, brings up a throw-away
environment ``pdtest-agents-<random>`` on a free port (PALLET_DEV_HOME and KUBECONFIG in
the temporary folder), and measures, side by side in one run:

* `up` with the three agents and nothing changed: median <= 0.5 s (docker), <= 3 s (kind);
* `health --json` with registry + 3 agents up: median <= 0.25 s;
* a one-line change to one agent, `up` until the new version answers, against the same
  steps run by hand: `docker build` + `docker push` + (docker) `docker rm -f` + `docker
  run`, (kind) `kubectl set image` + `kubectl rollout status`, then polling the new
  version, ``--pairs`` times each, alternating: ratio of the medians <= 1.15. Every change
  writes new text (a text built before would make both sides cached builds);
* memory of node (kind) + registry + 3 agents from `docker stats`: < 1 GiB.

A report, not a test: exit code 0, and 0 with a reason when the machine cannot run it.
It deletes only what it made (its own environment, by name).
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cli_env import user_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "pallet"
BASE_IMAGE = "pallet-dev-examples/busybox:local"
BUDGET_UNCHANGED = {"docker": 0.5, "kind": 3.0}
BUDGET_HEALTH_S = 0.25
BUDGET_CHANGE_RATIO = 1.15
BUDGET_MEMORY_MIB = 1024.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    run(argv, env, cwd)
    return time.perf_counter() - started


def verdict(value: float, budget: float) -> str:
    return "PASS" if value <= budget else "OVER"


def get(url: str) -> str:
    # one plain GET per poll, as `health` does (http.client: no proxy or redirect handling)
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def wait_for(check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, http.client.HTTPException, SystemExit):
            pass  # not up yet
        time.sleep(0.05)
    raise SystemExit("the new version never answered")


def memory_mib(names: list[str]) -> float:
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", *names],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    total = 0.0
    for line in out.splitlines():
        usage = json.loads(line)["MemUsage"].split("/")[0].strip()
        unit = usage.lstrip("0123456789.")
        number = float(usage[: len(usage) - len(unit)])
        total += number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 1024**2}.get(unit, 1)
    return total


def bench(backend: str, runs: int, pairs_of_runs: int) -> list[str]:
    tmp = Path(tempfile.mkdtemp(prefix="pallet-bench-agents-"))
    project = tmp / "pallet"
    shutil.copytree(EXAMPLES, project)
    name = f"pdtest-agents-{secrets.token_hex(3)}"
    port = free_port()
    env = user_env(
        PALLET_DEV_HOME=str(tmp / "home"),
        PALLET_DEV_NAME=name,
        PALLET_DEV_BACKEND=backend,
        PALLET_DEV_REGISTRY_PORT=str(port),
        KUBECONFIG=str(tmp / "kubeconfig"),
        NO_COLOR="1",
    )
    cli = [sys.executable, "-m", "pallet_dev"]
    lines = [f"[{backend}]"]
    kubectl = ["kubectl", "--kubeconfig", str(tmp / "home" / "state" / f"{name}.kubeconfig"),
               "--context", f"kind-{name}", "-n", "pallet"]  # fmt: skip
    try:
        cold = timed([*cli, "up", "--timeout", "900"], env, project)
        lines.append(f"  up from nothing (3 agents built):       {cold:6.2f} s")
        unchanged = [timed([*cli, "up"], env, project) for _ in range(runs)]
        median = statistics.median(unchanged)
        budget = BUDGET_UNCHANGED[backend]
        lines.append(
            f"  up, nothing changed (median of {runs}):    {median:6.2f} s  "
            f"budget {budget} s  {verdict(median, budget)}"
        )
        health = [timed([*cli, "health", "--json"], env, project) for _ in range(runs * 2)]
        median = statistics.median(health)
        lines.append(
            f"  health --json, 3 agents (median of {runs * 2}): {median:6.3f} s  "
            f"budget {BUDGET_HEALTH_S} s  {verdict(median, BUDGET_HEALTH_S)}"
        )
        version_file = project / "agents" / "packer" / "VERSION"
        packer = [""]

        def serves(text: str) -> bool:
            if backend == "docker":  # pallet-dev keeps the host port across replacements
                return text in get(packer[0].replace("/healthz", "/cgi-bin/version"))
            path = "/api/v1/namespaces/pallet/services/packer:8080/proxy/cgi-bin/version"
            return text in run([*kubectl[:-2], "get", "--raw", path], env, project)

        def ours(n: int) -> float:
            run([*cli, "up"], env, project)  # pallet-dev's own containers again (not timed)
            doc = json.loads(run([*cli, "health", "--json"], env, project))
            packer[0] = {a["name"]: a["url"] for a in doc["agents"]}["packer"]
            # new content every time (a text built before would be a cached build)
            text = f"packer-bench-{n}-{secrets.token_hex(4)}"
            version_file.write_text(f"{text}\n")
            started = time.perf_counter()
            run([*cli, "up"], env, project)
            wait_for(lambda: serves(text))
            return time.perf_counter() - started

        def by_hand(n: int) -> float:
            text = f"packer-hand-{n}-{secrets.token_hex(4)}"
            version_file.write_text(f"{text}\n")
            tag = f"localhost:{port}/{name}/packer:hand-{n}"
            context = project / "agents" / "packer"
            started = time.perf_counter()
            run(["docker", "build", "-q", "-t", tag, str(context)], env, project)
            run(["docker", "push", "-q", tag], env, project)
            if backend == "docker":
                container = f"{name}-agent-packer"
                run(["docker", "rm", "-f", container], env, project)
                run(["docker", "run", "-d", "--name", container, "--network", name,
                     "-p", "127.0.0.1::8080", tag], env, project)  # fmt: skip
                host = run(["docker", "port", container, "8080/tcp"], env, project).split()[0]
                wait_for(lambda: text in get(f"http://{host}/cgi-bin/version"))
            else:
                run([*kubectl, "set", "image", "deployment/packer", f"packer={tag}"], env, project)
                run([*kubectl, "rollout", "status", "deployment/packer", "--timeout=300s"],
                    env, project)  # fmt: skip
                wait_for(lambda: serves(text))
            return time.perf_counter() - started

        pairs = [(ours(n), by_hand(n)) for n in range(pairs_of_runs)]
        mine = statistics.median(p[0] for p in pairs)
        hand = statistics.median(p[1] for p in pairs)
        ratio = mine / hand
        lines.append(
            f"  one-line change to serving ({pairs_of_runs} pairs): pallet-dev {mine:5.2f} s, "
            f"by hand {hand:5.2f} s, "
            f"ratio {ratio:.2f}  budget {BUDGET_CHANGE_RATIO}  "
            f"{verdict(ratio, BUDGET_CHANGE_RATIO)}"
        )
        run([*cli, "up"], env, project)  # back to pallet-dev's own spec
        names = [f"{name}-registry"] if backend == "docker" else [f"{name}-control-plane"]
        if backend == "docker":
            names += [f"{name}-agent-{a}" for a in ("planner", "tracker", "packer")]
        used = memory_mib(names)
        lines.append(
            f"  memory (node + registry + 3 agents):     {used:6.0f} MiB  "
            f"budget {BUDGET_MEMORY_MIB:.0f} MiB  {verdict(used, BUDGET_MEMORY_MIB)}"
        )
    finally:
        subprocess.run([*cli, "down", "--clean"], env=env, cwd=project, capture_output=True,
                       timeout=600)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["docker", "kind", "both"], default="docker")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=5, help="one-line changes, each side")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        print("bench_agents: docker is not installed; nothing measured")
        return 0
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode:
        subprocess.run(["bash", str(EXAMPLES / "base" / "build-base-image.sh")], check=True)
    backends = ["docker", "kind"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "kind" and not all(shutil.which(t) for t in ("kind", "helm", "kubectl")):
            print("[kind] skipped: kind, helm or kubectl is not installed")
            continue
        print("\n".join(bench(backend, args.runs, args.pairs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
