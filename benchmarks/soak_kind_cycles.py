"""Soak: N `down`/`up` cycles on kind keep every pushed digest (issue 13), with their times.

    python benchmarks/soak_kind_cycles.py [--cycles 20] [--node-image IMAGE]

On kind, `down` deletes the cluster and keeps the registry's host data folder; `up` makes
a new cluster on it. This brings up a throw-away environment ``pdtest-soak-<random>`` (own
PALLET_DEV_HOME and KUBECONFIG in a temporary folder, a free port), pushes three images of
different sizes with `pallet-dev push`, then runs the cycles. After each `up` it checks
that `health --json` answers and that every tag still resolves to the digest it was pushed
with; after the last, it pushes once more and `down --clean` removes everything.

A kind cycle is a new cluster (~25 s here), so twenty take about ten minutes: it is not
part of the test suite (tests/e2e/test_kind_faults.py makes two cycles, one per Helm
major). It prints each cycle's `down` and `up` seconds and exits 1 on the first lost
digest or failed command, 0 when all cycles kept everything (or, with a reason, when the
machine cannot run kind).
"""

from __future__ import annotations

import argparse
import io
import json
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

from bench_kind import TOOLS, free_port

from cli_env import user_env

SIZES = (4096, 1024 * 1024, 8 * 1024 * 1024)
ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def pallet(
    env: dict[str, str], *args: str, timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pallet_dev", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return time.perf_counter() - started, result


def must(
    env: dict[str, str], *args: str, timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess[str]]:
    seconds, result = pallet(env, *args, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(
            f"pallet-dev {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return seconds, result


def one_layer_image(tag: str, size: int) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    subprocess.run(
        ["docker", "import", "-", tag], input=archive.getvalue(), capture_output=True, timeout=300,
        check=True,
    )  # fmt: skip


def served_digest(port: str, reference: str) -> str | None:
    import httpx

    repository, tag = reference.rsplit(":", 1)
    response = httpx.head(
        f"http://127.0.0.1:{port}/v2/{repository}/manifests/{tag}",
        headers={"Accept": ACCEPT},
        timeout=10,
    )
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


def lost(port: str, digests: dict[str, str]) -> list[str]:
    return [ref for ref, digest in digests.items() if served_digest(port, ref) != digest]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--node-image", default=os.environ.get("PALLET_DEV_KIND_NODE_IMAGE"))
    args = parser.parse_args()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not on PATH; the kind backend needs all of {TOOLS}")
        return 0
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        print("skipped: the Docker daemon does not answer")
        return 0

    name = f"pdtest-soak-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="pallet-soak-kind-"))
    port = str(free_port())
    env = {
        **user_env(),
        "PALLET_DEV_HOME": str(work / "home"),
        "PALLET_DEV_NAME": name,
        "PALLET_DEV_BACKEND": "kind",
        "PALLET_DEV_REGISTRY_PORT": port,
        "KUBECONFIG": str(work / "kubeconfig"),
        "NO_COLOR": "1",
    }
    if args.node_image:
        env["PALLET_DEV_KIND_NODE_IMAGE"] = args.node_image
    images = [f"pdtest/{name}/soak-{index}:1" for index in range(len(SIZES))]
    digests: dict[str, str] = {}
    downs: list[float] = []
    ups: list[float] = []
    failed = False
    try:
        must(env, "up", "--timeout", "600")
        for image, size in zip(images, SIZES):
            one_layer_image(image, size)
            document = json.loads(must(env, "push", image, "--json")[1].stdout)
            digests[f"{document['repository']}:{document['tag']}"] = document["digest"]
        for cycle in range(1, args.cycles + 1):
            down, _ = must(env, "down")
            up, _ = must(env, "up", "--timeout", "600")
            downs.append(down)
            ups.append(up)
            _, health = pallet(env, "health", "--json", "--timeout", "10")
            gone = lost(port, digests)
            print(
                f"cycle {cycle:>2}: down {down:5.1f} s, up {up:5.1f} s, health exit "
                f"{health.returncode}, digests kept {len(digests) - len(gone)}/{len(digests)}",
                flush=True,
            )
            if health.returncode != 0 or gone:
                print(f"FAILED at cycle {cycle}: lost {gone}\n{health.stdout}{health.stderr}")
                failed = True
                break
        if not failed:
            extra = f"pdtest/{name}/soak-after:1"
            one_layer_image(extra, 2048)
            images.append(extra)
            must(env, "push", extra)
            print(
                f"{len(ups)} cycles kept all {len(digests)} digests; a push after them worked. "
                f"down median {statistics.median(downs):.1f} s, up median "
                f"{statistics.median(ups):.1f} s (min {min(ups):.1f}, max {max(ups):.1f})"
            )
    finally:
        pallet(env, "down", "--clean", timeout=300)
        subprocess.run(
            ["docker", "image", "rm", "--force", *images,
             *(f"localhost:{port}/{image}" for image in images)],
            capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
