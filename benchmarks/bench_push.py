"""Benchmark: `pallet-dev push` against `docker push` (and `kind load docker-image`).

    python benchmarks/bench_push.py [--rounds 3] [--size-mb 100] [--kind-cluster NAME]

In a throw-away Docker-backend environment (unique name, free port, PALLET_DEV_HOME in a
temporary folder), for images built here (a random layer of --size-mb, nothing pulled):

* a full push of a new image: `pallet-dev push` vs `docker push` of another image of the
  same size (new content each round, so neither finds its layers in the registry);
  budget: ratio <= 1.1;
* a one-layer change on top of that image (a few kB): both again; budget: ratio <= 1.1;
  and, printed beside it, the same change by hand as `pallet-dev push` does it (`docker
  tag` of a host image + `docker push`);
* with --kind-cluster (an existing kind cluster's name): `kind load docker-image` of the
  same images, the figure `push` replaces (printed; expect far above the incremental push).

It deletes only what it made. A report, not a test: the exit code is always 0.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from cli_env import user_env

PALLET_DEV = str(Path(sys.executable).parent / "pallet-dev")
IMAGE = os.environ.get("PALLET_DEV_TEST_REGISTRY_IMAGE", "pallet-dev-local/registry:3.1.2")
BUDGET_RATIO = 1.1


def run(argv: list[str], env: dict[str, str], *, data: bytes | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, input=data, capture_output=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def layer_image(tag: str, size: int, env: dict[str, str], base: str | None = None) -> None:
    """`docker import` of random bytes (a fresh layer), or one small layer on ``base``."""
    if base is None:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            blob = os.urandom(size)
            info = tarfile.TarInfo("data.bin")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        run(["docker", "import", "-", tag], env, data=archive.getvalue())
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "change.txt").write_text(secrets.token_hex(2048))
        Path(folder, "Dockerfile").write_text(f"FROM {base}\nCOPY change.txt /change.txt\n")
        run(["docker", "build", "-q", "-t", tag, folder], env)


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--kind-cluster", default="")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        print("docker is not installed: nothing measured")
        return 0
    home = tempfile.mkdtemp(prefix="pallet-dev-bench-push-")
    name = f"pdb-push-{secrets.token_hex(3)}"
    port = _free_port()
    env = {
        **user_env(),
        "PALLET_DEV_HOME": home,
        "PALLET_DEV_NAME": name,
        "PALLET_DEV_BACKEND": "docker",
        "PALLET_DEV_REGISTRY_PORT": str(port),
        "PALLET_DEV_REGISTRY_IMAGE": IMAGE,
        "NO_COLOR": "1",
    }
    host = f"localhost:{port}"
    made: list[str] = []
    keys = ("pd full", "raw full", "pd one", "raw one", "hand one", "kind full", "kind one")
    rows: dict[str, list[float]] = {key: [] for key in keys}
    try:
        run([PALLET_DEV, "up", "--prefer-docker"], env)
        size = args.size_mb * 1024 * 1024
        for round_ in range(args.rounds):
            ours, raw = f"bench/ours-{round_}:1", f"{host}/bench/raw-{round_}:1"
            layer_image(ours, size, env)
            layer_image(raw, size, env)
            made += [ours, raw, f"{host}/{ours}"]
            rows["pd full"].append(run([PALLET_DEV, "push", ours], env))
            rows["raw full"].append(run(["docker", "push", raw], env))
            ours2, raw2 = f"bench/ours-{round_}:2", f"{host}/bench/raw-{round_}:2"
            layer_image(ours2, 0, env, base=ours)
            layer_image(raw2, 0, env, base=raw)
            made += [ours2, raw2, f"{host}/{ours2}"]
            rows["pd one"].append(run([PALLET_DEV, "push", ours2], env))
            rows["raw one"].append(run(["docker", "push", raw2], env))
            # what `pallet-dev push` stands for by hand: tag the host image, then push it
            hand, hand_target = f"bench/hand-{round_}:2", f"{host}/bench/hand-{round_}:2"
            layer_image(hand, 0, env, base=raw)
            made += [hand, hand_target]
            started = time.perf_counter()
            run(["docker", "tag", hand, hand_target], env)
            run(["docker", "push", hand_target], env)
            rows["hand one"].append(time.perf_counter() - started)
            if args.kind_cluster:
                kind = ["kind", "load", "docker-image", "--name", args.kind_cluster]
                rows["kind full"].append(run([*kind, ours], env))
                rows["kind one"].append(run([*kind, ours2], env))
    finally:
        subprocess.run([PALLET_DEV, "down", "--clean"], env=env, capture_output=True, timeout=300)
        if made:
            subprocess.run(["docker", "rmi", "-f", *made], capture_output=True, timeout=300)
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"pallet-dev push vs docker push: median of {args.rounds} rounds, {args.size_mb} MB layer"
    )
    for label, ours_key, raw_key in (
        (f"new image ({args.size_mb} MB)", "pd full", "raw full"),
        ("one-layer change (~4 kB)", "pd one", "raw one"),
    ):
        ours_s, raw_s = median(rows[ours_key]), median(rows[raw_key])
        ratio = ours_s / raw_s
        verdict = "PASS" if ratio <= BUDGET_RATIO else "OVER"
        line = f"  {label:<28} push {ours_s:6.2f} s   docker push {raw_s:6.2f} s   "
        line += f"ratio {ratio:.2f} (<= {BUDGET_RATIO}) {verdict}"
        kind_key = "kind full" if ours_key == "pd full" else "kind one"
        if rows[kind_key]:
            kind_s = median(rows[kind_key])
            line += f"   kind load {kind_s:6.2f} s (push/kind load {ours_s / kind_s:.2f})"
        print(line)
    hand_s = median(rows["hand one"])
    print(
        f"  one-layer change by hand (docker tag + docker push) {hand_s:6.2f} s: "
        f"push/by hand {median(rows['pd one']) / hand_s:.2f} (printed, no budget)"
    )
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
