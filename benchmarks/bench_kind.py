"""Speed and footprint of the kind backend against its budgets (issues 4 and 18), in one run.

    python benchmarks/bench_kind.py [--runs 5] [--node-image IMAGE] [--name NAME]

On a machine that can run kind (docker, kind, helm, kubectl on PATH, a kind node
image present locally: --node-image, else PALLET_DEV_KIND_NODE_IMAGE, else the
configured default), it brings up a throw-away environment ``pdtest-bench-<random>``
on a free port, with PALLET_DEV_HOME and KUBECONFIG in a temporary folder, and
measures:

* `kind create cluster` alone, with the kind config `up` generates (then deleted), side
  by side with `up` from nothing: `up` <= that + 10 s; and `up`'s phase split, from the
  (N.Ns) of its ✓ lines;
* `up` when the cluster and release exist and nothing changed, for each way of calling
  it (bare, and with `--config FILE` first): median <= 1 s;
* from an existing cluster, the chart deploy until `/v2/` answers, image preloaded
  (`helm uninstall` of the release, then `up`): median < 5 s, for the whole `up` and
  for its deploy steps alone (from their ✓ lines);
* memory of the whole environment after `up` (the kind node container, which runs
  the registry pod too, from `docker stats`): < 1 GiB;
* `down` (data kept), `up` again on the kept data, and `down --clean`.

Each figure has its budget and PASS or OVER next to it. It is a report, not a
test: the exit code is 0, and 0 with a reason when the machine cannot run kind.
Everything it made is deleted at the end (its own cluster only, by name).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_env import user_env

BUDGET_UNCHANGED_S = 1.0
BUDGET_OVER_CREATE_S = 10.0
BUDGET_DEPLOY_S = 5.0
BUDGET_MEMORY_MIB = 1024.0
TOOLS = ("docker", "kind", "helm", "kubectl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LAST_STDERR = [""]


def timed(argv: list[str], env: dict[str, str], timeout: float = 900) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    LAST_STDERR[0] = result.stderr
    return elapsed


def wait_until_gone(url: str, timeout: float = 120) -> None:
    """Until ``url`` stops answering (refused, reset or silent)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=1)
        try:
            conn.request("GET", parts.path)
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            return
        finally:
            conn.close()
        time.sleep(0.1)
    raise SystemExit(f"{url} still answers {timeout:g} s after the release was uninstalled")


def step_seconds(stderr: str, *prefixes: str) -> float:
    """The sum of the (N.Ns) durations of the ✓ lines starting with ``prefixes``."""
    total = 0.0
    for line in stderr.splitlines():
        text = line.strip().removeprefix("✓").strip()
        if text.startswith(prefixes):
            match = re.search(r"\((\d+(?:\.\d+)?)s\)$", text)
            total += float(match.group(1)) if match else 0.0
    return total


def phases(stderr: str) -> list[tuple[str, float]]:
    """Every ✓ line with its (N.Ns), in order: `up`'s phase split."""
    found = []
    for line in stderr.splitlines():
        text = line.strip()
        if not text.startswith("✓"):
            continue
        match = re.search(r"^✓ (.*?)(?: \((\d+(?:\.\d+)?)s\))?$", text)
        if match:
            found.append((match.group(1), float(match.group(2) or 0.0)))
    return found


def kind_create_alone(pallet_dev: list[str], env: dict[str, str], work: Path, name: str) -> float:
    """`kind create cluster` with the config `up` would write (its data folder in ``work``)."""
    plan = subprocess.run(
        [*pallet_dev, "up", "--dry-run", "--json"], env=env, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    config = json.loads(plan)["kind_config"]
    mount = work / "create-alone-data"
    mount.mkdir()
    config["nodes"][0]["extraMounts"][0]["hostPath"] = str(mount)
    config_file = work / "create-alone.yaml"
    config_file.write_text(json.dumps(config))
    argv = ["kind", "create", "cluster", "--name", name, "--config", str(config_file),
            "--kubeconfig", str(work / "create-alone.kubeconfig")]  # fmt: skip
    try:
        return timed(argv, env)
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", name, "--kubeconfig",
                        str(work / "create-alone.kubeconfig")], env=env,
                       capture_output=True, timeout=600)  # fmt: skip


def memory_mib(docker: str, container: str) -> float | None:
    """The container's memory use from `docker stats` ("612.3MiB / 15.5GiB")."""
    out = subprocess.run(
        [docker, "stats", "--no-stream", "--format", "{{json .}}", container],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    try:
        usage = json.loads(out.splitlines()[0])["MemUsage"].split("/")[0].strip()
    except (IndexError, KeyError, ValueError):
        return None
    match = re.match(r"([\d.]+)\s*([KMG]i?B|B)", usage)
    if match is None:
        return None
    factor = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1 / 1024,
              "MB": 1, "GB": 1024}.get(match.group(2), 1)  # fmt: skip
    return float(match.group(1)) * factor


def verdict(value: float, budget: float) -> str:
    return "PASS" if value <= budget else "OVER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--node-image", default=os.environ.get("PALLET_DEV_KIND_NODE_IMAGE"))
    parser.add_argument("--name", default=f"pdtest-bench-{secrets.token_hex(3)}")
    args = parser.parse_args()

    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not on PATH; the kind backend needs all of {TOOLS}")
        return 0
    docker = str(shutil.which("docker"))
    if subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode != 0:
        print("skipped: the Docker daemon does not answer")
        return 0
    if not args.node_image:
        from pallet_dev.config import DEFAULT_KIND_NODE_IMAGE

        args.node_image = DEFAULT_KIND_NODE_IMAGE
    present = subprocess.run([docker, "image", "inspect", args.node_image], capture_output=True)
    if present.returncode != 0:
        print(f"skipped: the kind node image {args.node_image} is not present locally")
        return 0

    name = args.name
    work = Path(tempfile.mkdtemp(prefix="pallet-bench-kind-"))
    env = {
        **user_env(),
        "PALLET_DEV_HOME": str(work / "home"),
        "PALLET_DEV_NAME": name,
        "PALLET_DEV_BACKEND": "kind",
        "PALLET_DEV_REGISTRY_PORT": str(free_port()),
        "PALLET_DEV_KIND_NODE_IMAGE": args.node_image,
        "KUBECONFIG": str(work / "kubeconfig"),
        "NO_COLOR": "1",
    }
    pallet_dev = [sys.executable, "-m", "pallet_dev"]
    helm = [
        "helm", "--kube-context", f"kind-{name}",
        "--kubeconfig", str(work / "home" / "state" / f"{name}.kubeconfig"),
    ]  # fmt: skip
    config_file = work / "config" / "pallet-dev.yaml"
    config_file.parent.mkdir()
    config_file.write_text(f"name: {name}\nbackend: kind\n")
    rows: list[tuple[str, str, str, str]] = []
    split: list[tuple[str, float]] = []
    try:
        create = kind_create_alone(pallet_dev, env, work, name)
        cold = timed([*pallet_dev, "up", "--timeout", "900"], env)
        split = phases(LAST_STDERR[0])
        rows.append(("kind create cluster alone (same kind config)", f"{create:.1f} s", "-", "-"))
        rows.append(
            (
                "up from nothing (cluster creation)",
                f"{cold:.1f} s",
                f"<= {create + BUDGET_OVER_CREATE_S:.1f} s",
                verdict(cold, create + BUDGET_OVER_CREATE_S),
            )
        )

        for label, argv in (
            ("up", [*pallet_dev, "up"]),
            ("--config FILE up", [*pallet_dev, "--config", str(config_file), "up"]),
        ):
            unchanged = [timed(argv, env) for _ in range(args.runs)]
            median = statistics.median(unchanged)
            rows.append(
                (
                    f"{label}, nothing changed (median of {args.runs})",
                    f"{median:.2f} s",
                    f"<= {BUDGET_UNCHANGED_S:g} s",
                    verdict(median, BUDGET_UNCHANGED_S),
                )
            )

        deploys, deploy_steps = [], []
        for _ in range(max(1, args.runs // 2)):
            timed([*helm, "uninstall", "registry", "--namespace", "pallet", "--wait"], env)
            # `helm uninstall --wait` returns before the registry pod has drained and
            # kube-proxy has dropped its NodePort: until then /v2/ still answers, and `up`
            # rightly finds nothing to do. The release is missing once /v2/ is gone.
            wait_until_gone(f"http://127.0.0.1:{env['PALLET_DEV_REGISTRY_PORT']}/v2/")
            deploys.append(timed([*pallet_dev, "up"], env))
            deploy_steps.append(
                step_seconds(LAST_STDERR[0], "Installing chart", "Waiting for the registry at")
            )
        median = statistics.median(deploys)
        rows.append(
            (
                f"up with the release missing, to /v2/ (median of {len(deploys)})",
                f"{median:.2f} s",
                f"< {BUDGET_DEPLOY_S:g} s",
                verdict(median, BUDGET_DEPLOY_S - 1e-9),
            )
        )
        median = statistics.median(deploy_steps)
        rows.append(
            (
                "  of which helm upgrade --install --wait + GET /v2/",
                f"{median:.2f} s",
                f"< {BUDGET_DEPLOY_S:g} s",
                verdict(median, BUDGET_DEPLOY_S - 1e-9),
            )
        )

        used = memory_mib(docker, f"{name}-control-plane")
        if used is None:
            rows.append(("memory after up (kind node + registry)", "unknown", "< 1 GiB", "-"))
        else:
            rows.append(
                (
                    "memory after up (kind node + registry)",
                    f"{used:.0f} MiB",
                    "< 1024 MiB",
                    verdict(used, BUDGET_MEMORY_MIB - 1e-9),
                )
            )

        down = timed([*pallet_dev, "down"], env)
        rows.append(("down (cluster deleted, data kept)", f"{down:.1f} s", "-", "-"))
        again = timed([*pallet_dev, "up", "--timeout", "900"], env)
        rows.append(("up after down (data kept)", f"{again:.1f} s", "-", "-"))
        clean = timed([*pallet_dev, "down", "--clean"], env)
        rows.append(("down --clean", f"{clean:.1f} s", "-", "-"))
    finally:
        subprocess.run([*pallet_dev, "down", "--clean"], env=env, capture_output=True, timeout=600)
        subprocess.run(["kind", "delete", "cluster", "--name", name], env=env,
                       capture_output=True, timeout=600)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(row[0]) for row in rows)
    print(f"kind backend, node image {args.node_image}")
    for label, value, budget, result in rows:
        print(f"  {label:<{width}}  {value:>10}  {budget:>12}  {result}")
    if split:
        print("phase split of `up` from nothing (its ✓ lines; concurrent steps overlap):")
        width = max(len(label) for label, _ in split)
        for label, seconds in split:
            print(f"  {label:<{width}}  {seconds:>6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
