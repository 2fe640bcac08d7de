"""The cluster backend's speed beside local kind: unchanged `up`, `health`, edit -> serving.

    python benchmarks/bench_cluster.py [--runs 5] [--edits 3] [--node-image IMAGE]

A kind cluster plays the team's cluster and a registry container the team's registry
(tests/support/team_cluster.py: the admin's part, a ServiceAccount bound only to the
documented Role). In a copy of examples/pallet it measures, for `backend: cluster`:

* `up` with the three agents and nothing changed: median <= 3 s (issue 17);
* `health --json` with the three agents: median;
* edit -> serving through `dev`: the write of packer's VERSION until `dev` reports the
  rollout done (its NDJSON cycle record: built, pushed, rolled out, healthy), median;

and the same three figures for the local kind backend (its own throw-away environment), side
by side with the ratio. A report, not a test: exit code 0, and 0 with a reason when the
machine cannot run it. It deletes only what it made.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.dev_process import DevProcess  # noqa: E402
from tests.support.team_cluster import EXAMPLES, registry_name, team_cluster  # noqa: E402
from tests.support.team_cluster import user_project  # noqa: E402

from cli_env import user_env  # noqa: E402

BASE_IMAGE = "pallet-dev-examples/busybox:local"
BUDGET_UNCHANGED_S = 3.0
CLI = [sys.executable, "-m", "pallet_dev"]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return time.perf_counter() - started


def measure(project: Path, env: dict[str, str], runs: int, edits: int) -> dict[str, float]:
    """Cold `up`, then the medians of unchanged `up`, `health` and edit -> serving."""
    figures = {"cold": timed([*CLI, "up", "--timeout", "900"], env, project)}
    figures["unchanged"] = statistics.median(timed([*CLI, "up"], env, project) for _ in range(runs))
    figures["health"] = statistics.median(
        timed([*CLI, "health", "--json"], env, project) for _ in range(runs * 2)
    )
    dev = DevProcess(env, project, cycle_timeout=300)
    cycles = []
    try:
        dev.next("watching", timeout=900)
        for n in range(edits):
            started = time.perf_counter()
            # new content every time (a text built before would be a cached build)
            text = f"packer-bench-{n}-{secrets.token_hex(4)}"
            (project / "agents" / "packer" / "VERSION").write_text(f"{text}\n")
            cycle = dev.next("cycle", timeout=600)
            if not cycle["ok"]:
                raise SystemExit(f"dev cycle failed: {cycle}")
            cycles.append(time.perf_counter() - started)
    finally:
        dev.stop()
    figures["edit"] = statistics.median(cycles)
    return figures


def kind_figures(tools: dict[str, str], node_image: str, runs: int, edits: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="pallet-bench-cluster-kind-"))
    project = tmp / "pallet"
    shutil.copytree(EXAMPLES, project)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **user_env(),
        "PATH": tools["bin_dir"] + os.pathsep + os.environ.get("PATH", ""),
        "PALLET_DEV_HOME": str(tmp / "home"),
        "PALLET_DEV_NAME": f"pdtest-ck-{secrets.token_hex(3)}",
        "PALLET_DEV_BACKEND": "kind",
        "PALLET_DEV_REGISTRY_PORT": str(port),
        "PALLET_DEV_KIND_NODE_IMAGE": node_image,
        "KUBECONFIG": str(tmp / "kubeconfig"),
        "NO_COLOR": "1",
    }
    try:
        return measure(project, env, runs, edits)
    finally:
        subprocess.run([*CLI, "down", "--clean"], env=env, cwd=project, capture_output=True,
                       timeout=600)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument("--node-image", default=os.environ.get("PALLET_DEV_KIND_NODE_IMAGE"))
    args = parser.parse_args()
    found = {t: shutil.which(t) for t in ("docker", "kind", "kubectl", "helm")}
    if not all(found.values()) or not args.node_image:
        print("bench_cluster: needs docker, kind, kubectl, helm and --node-image; nothing measured")
        return 0
    reason = registry_name()
    if isinstance(reason, str):
        print(f"bench_cluster: {reason}; nothing measured")
        return 0
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode:
        subprocess.run(["bash", str(EXAMPLES / "base" / "build-base-image.sh")], check=True)
    registry_image = os.environ.get("PALLET_DEV_REGISTRY_IMAGE", "pallet-dev-local/registry:3.1.2")
    work = Path(tempfile.mkdtemp(prefix="pallet-bench-cluster-"))
    bin_dir = work / "bin"
    bin_dir.mkdir()
    for name, path in found.items():
        (bin_dir / name).symlink_to(str(path))
    tools = {**{k: str(v) for k, v in found.items()}, "bin_dir": str(bin_dir)}
    try:
        with team_cluster(tools, args.node_image, registry_image, work, ("bench",)) as team:
            project, env = user_project(team, "bench")
            cluster = measure(project, env, args.runs, args.edits)
        kind = kind_figures(tools, args.node_image, args.runs, args.edits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("up from nothing (3 agents)", "cold", None),
        (f"up, nothing changed (median of {args.runs})", "unchanged", BUDGET_UNCHANGED_S),
        (f"health --json (median of {args.runs * 2})", "health", None),
        (f"edit -> serving via dev (median of {args.edits})", "edit", None),
    ]
    print(f"{'':44} {'cluster':>9} {'kind':>9} {'ratio':>6}")
    for title, key, budget in rows:
        line = f"{title:44} {cluster[key]:8.2f}s {kind[key]:8.2f}s {cluster[key] / kind[key]:6.2f}"
        if budget is not None:
            verdict = "PASS" if cluster[key] <= budget else "OVER"
            line += f"  budget {budget:g} s (cluster) {verdict}"
        print(line)
    print(json.dumps({"cluster": cluster, "kind": kind}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
