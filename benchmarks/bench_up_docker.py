"""Benchmark: `pallet-dev up --prefer-docker` against the equivalent raw commands.

Prints, side by side in one run:
  - cold `up` (nothing exists, image local) vs the raw commands as a script a user
    writes: `docker volume create` + `docker run` + a curl loop polling `/v2/` every
    20 ms (pallet-dev's own interval); budget: ratio <= 1.25. Like for like, pallet-dev
    runs the registry alone here (`mirrors: []`); the default also starts the four
    pull-through caches, shown beside it for information.
    Measured twice: with the validated-config snapshot in place (every `up` after the
    first, or after a config change: the fast path without Typer/pydantic), and with
    no snapshot (the very first `up`, which validates the config).
  - `up` when already healthy; budget: median <= 0.35 s, for every way of calling it:
    bare `up`, and `pallet-dev --config FILE up --prefer-docker` (the README's form of
    global options)

A report, not a test: it always exits 0. Usage:
  python benchmarks/bench_up_docker.py [--rounds N] [--image IMAGE]
"""

from __future__ import annotations

import argparse
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

from cli_env import user_env

PALLET_DEV = str(Path(sys.executable).parent / "pallet-dev")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


RAW_SCRIPT = """
set -e
docker volume create "$NAME-data" >/dev/null
docker run --detach --name "$NAME" --restart unless-stopped \\
  --publish "127.0.0.1:$PORT:5000" --volume "$NAME-data:/var/lib/registry" \\
  --env OTEL_TRACES_EXPORTER=none "$IMAGE" >/dev/null
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/"; do sleep 0.02; done
"""


def raw_cold(image: str) -> float:
    """The hand-written equivalent, as a user runs it: a shell script polling with curl."""
    name, port = f"bench-raw-{secrets.token_hex(3)}", free_port()
    env = {**user_env(), "NAME": name, "PORT": str(port), "IMAGE": image}
    started = time.perf_counter()
    subprocess.run(["bash", "-c", RAW_SCRIPT], env=env, check=True, timeout=60)
    elapsed = time.perf_counter() - started
    docker("rm", "--force", name)
    docker("volume", "rm", f"{name}-data")
    return elapsed


def pallet(env: dict[str, str], *argv: str, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        [PALLET_DEV, *argv], env=env, check=True, capture_output=True, timeout=120, cwd=cwd
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--image", default="pallet-dev-local/registry:3.1.2")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="pallet-bench-")
    name = f"bench-pd-{secrets.token_hex(3)}"
    env = {
        **user_env(),
        "PALLET_DEV_HOME": home,
        "PALLET_DEV_NAME": name,
        "PALLET_DEV_REGISTRY_PORT": str(free_port()),
        "PALLET_DEV_REGISTRY_IMAGE": args.image,
        "PALLET_DEV_BACKEND": "docker",
    }
    raw, cold, first, warm, warm_config, caches = [], [], [], [], [], []
    snapshots = Path(home) / "state" / "config-snapshots"
    alone = Path(home) / "registry-alone"  # what the raw script runs: no caches
    alone.mkdir()
    (alone / "pallet-dev.yaml").write_text("mirrors: []\n")
    defaults = Path(home) / "defaults"  # no config file: the four default caches too
    defaults.mkdir()
    config = Path(home) / "team.yaml"
    config.write_text(f"backend: docker\nregistry:\n  port: {env['PALLET_DEV_REGISTRY_PORT']}\n")
    with_config = ("--config", str(config), "up", "--prefer-docker")
    try:
        pallet(env, "up", cwd=alone)  # warm the page cache and .pyc files once
        pallet(env, "down", "--clean", cwd=alone)
        for _ in range(args.rounds):
            raw.append(raw_cold(args.image))
            cold.append(pallet(env, "up", cwd=alone))
            warm.extend(pallet(env, "up", cwd=alone) for _ in range(3))
            pallet(env, *with_config)  # this file's first run validates it
            warm_config.extend(pallet(env, *with_config) for _ in range(3))
            pallet(env, "down", "--clean", cwd=alone)
            shutil.rmtree(snapshots, ignore_errors=True)
            first.append(pallet(env, "up", cwd=alone))
            pallet(env, "down", "--clean", cwd=alone)
            caches.append(pallet(env, "up", cwd=defaults))
            pallet(env, "down", "--clean", cwd=defaults)
    finally:
        subprocess.run([PALLET_DEV, "down", "--clean"], env=env, capture_output=True, cwd=defaults)
    raw_median, cold_median = statistics.median(raw), statistics.median(cold)
    warm_median, first_median = statistics.median(warm), statistics.median(first)
    warm_config_median = statistics.median(warm_config)
    ratio = cold_median / raw_median
    first_ratio = first_median / raw_median
    print(f"{'case':<44} {'median':>9} {'budget':>12}  verdict")
    print(f"{'raw script: volume create, run, curl /v2/':<44} {raw_median:>8.3f}s {'':>12}")
    print(
        f"{'pallet-dev up --prefer-docker (cold)':<44} {cold_median:>8.3f}s "
        f"{'<= 1.25x raw':>12}  ratio {ratio:.2f} {'PASS' if ratio <= 1.25 else 'OVER'}"
    )
    print(
        f"{'  same, first up (no config snapshot yet)':<44} {first_median:>8.3f}s "
        f"{'':>12}  ratio {first_ratio:.2f} (informational)"
    )
    caches_median = statistics.median(caches)
    print(
        f"{'  same, with the 4 default caches':<44} {caches_median:>8.3f}s "
        f"{'':>12}  ratio {caches_median / raw_median:.2f} (informational)"
    )
    print(
        f"{'pallet-dev up (already healthy)':<44} {warm_median:>8.3f}s {'<= 0.350s':>12}  "
        f"{'PASS' if warm_median <= 0.35 else 'OVER'}"
    )
    print(
        f"{'  same, --config FILE up --prefer-docker':<44} {warm_config_median:>8.3f}s "
        f"{'<= 0.350s':>12}  {'PASS' if warm_config_median <= 0.35 else 'OVER'}"
    )
    print(f"rounds: {args.rounds}; image: {args.image}; load average: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
