"""Speed of the pallet-dev CLI against the budgets of issue 5, in one run.

    python benchmarks/bench_cli.py [--runs 15] [--only usage|help|health]

Prints, side by side: the median wall time of `pallet-dev health --json` against a
healthy registry (a real container it starts with the Docker backend under a unique
name and free port, and removes), called bare and as `pallet-dev --config FILE health
--json`, with its ratio to `python -c "import httpx"` (the budget), `curl -s` on the
same URL and a bare `python -c pass`; `health` with the registry down (closed port) and
against an endpoint that accepts and never answers (`--timeout 0.5`);
`pallet-dev --help`; the peak RSS of `health`; usage errors (an unknown option or command,
a value of the wrong type or not among the choices, a missing value), each next to
`python -c pass`. Each figure has its budget next to it and PASS or OVER. It is a report,
not a test: the exit code is always 0. `--only` runs one part (`usage` and `help` start no
container).

Runs of the commands compared with each other are interleaved, so a burst of load
on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cli_env import user_env

PYTHON = sys.executable
PALLET_DEV = str(Path(sys.executable).parent / "pallet-dev")
IMAGE = os.environ.get("PALLET_DEV_TEST_REGISTRY_IMAGE", "pallet-dev-local/registry:3.1.2")

# `health --json` with the registry up: at most this times `python -c "import httpx"` in the
# same environment (the floor of any httpx-based Python CLI), for every way of calling it
BUDGET_HEALTHY_RATIO = 1.25
# Every HTTP call goes through httpx (issue 12), so these are relative to the same floor:
# registry down <= 1.25x `import httpx`; a silent endpoint <= its --timeout + 1.25x the floor.
BUDGET_DOWN_RATIO = 1.25
SILENT_TIMEOUT = 0.5
BUDGET_HELP = 0.20
# bad input fails fast (issue 13): each usage error's median, whatever the mistake
BUDGET_USAGE_ERROR = 0.30
USAGE_ERRORS = (
    ("up", "--port", "abc"),
    ("--bogus",),
    ("up", "--backend", "bogus"),
    ("nosuchcommand",),
    ("up", "--bogus"),
    ("health", "--timeout"),
    ("push",),
)
BUDGET_RSS_MIB = 60.0


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    budget: str = ""
    verdict: str = ""
    note: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, int, int]:
    """Wall seconds, exit code and peak RSS in KiB of one run (wait4 gives its rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss_kib = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return elapsed, proc.returncode, rss_kib


def interleaved(
    commands: Mapping[str, Sequence[str]], env: Mapping[str, str], runs: int, warmup: int = 2
) -> dict[str, list[tuple[float, int, int]]]:
    samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in commands}
    for index in range(warmup + runs):
        for name, argv in commands.items():
            sample = run_once(argv, env)
            if index >= warmup:
                samples[name].append(sample)
    return samples


def median(samples: list[tuple[float, int, int]]) -> float:
    return statistics.median(sample[0] for sample in samples)


def verdict(value: float, budget: float) -> str:
    return "PASS" if value <= budget else "OVER"


def seconds(value: float) -> str:
    return f"{value:.3f} s"


def codes(samples: list[tuple[float, int, int]]) -> str:
    return "exit " + "/".join(str(code) for code in sorted({s[1] for s in samples}))


@contextmanager
def silent_endpoint() -> Iterator[int]:
    """A local socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=1)
        for conn in held:
            conn.close()
        server.close()


@contextmanager
def registry(env: dict[str, str]) -> Iterator[str | None]:
    """A real registry container (Docker backend); None when Docker cannot run one."""
    if shutil.which("docker") is None:
        yield None
        return
    up = subprocess.run(
        [PALLET_DEV, "up", "--prefer-docker", "--timeout", "60"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )
    try:
        if up.returncode != 0:
            print(f"(could not start a registry: {up.stderr.strip()[-300:]})", file=sys.stderr)
            yield None
        else:
            yield f"http://127.0.0.1:{env['PALLET_DEV_REGISTRY_PORT']}"
    finally:
        subprocess.run(
            [PALLET_DEV, "down", "--clean"],
            env=env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
        )


PARTS = ("health", "help", "usage")


def bench(runs: int, parts: Sequence[str] = PARTS) -> list[Row]:
    home = tempfile.mkdtemp(prefix="pallet-dev-bench-")
    env = {
        **user_env(),
        "PALLET_DEV_HOME": home,
        "PALLET_DEV_NAME": f"pdb-{secrets.token_hex(4)}",
        "PALLET_DEV_BACKEND": "docker",
        "PALLET_DEV_REGISTRY_IMAGE": IMAGE,
        "PALLET_DEV_REGISTRY_PORT": str(free_port()),
        "NO_COLOR": "1",
    }
    rows: list[Row] = []
    bare: float | None = None  # the median of `python -c pass`, once measured
    try:
        if "health" in parts:
            bare = bench_health(runs, env, home, rows)
        if "help" in parts:
            samples = interleaved({"help": [PALLET_DEV, "--help"]}, env, runs)
            value = median(samples["help"])
            rows.append(
                Row(
                    "pallet-dev --help",
                    seconds(value),
                    seconds(BUDGET_HELP),
                    verdict(value, BUDGET_HELP),
                    f"{value / bare:.1f}x python -c pass" if bare else "",
                )
            )
        if "usage" in parts:
            rows.extend(bench_usage_errors(runs, env))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows


def bench_usage_errors(runs: int, env: Mapping[str, str]) -> list[Row]:
    """Each usage error interleaved with `python -c pass`: the same load hits all alike."""
    commands = {" ".join(args): [PALLET_DEV, *args] for args in USAGE_ERRORS}
    samples = interleaved({**commands, "pass": [PYTHON, "-c", "pass"]}, env, runs)
    bare = median(samples["pass"])
    rows = []
    for label in commands:
        value = median(samples[label])
        rows.append(
            Row(
                f"pallet-dev {label} (usage error)",
                seconds(value),
                seconds(BUDGET_USAGE_ERROR),
                verdict(value, BUDGET_USAGE_ERROR),
                f"{value / bare:.1f}x python -c pass; {codes(samples[label])}",
            )
        )
    rows.append(Row("python -c pass", seconds(bare)))
    return rows


def bench_health(runs: int, env: dict[str, str], home: str, rows: list[Row]) -> float | None:
    """The `health` rows, appended to ``rows``; the median of `python -c pass`, if measured."""
    health = [PALLET_DEV, "health", "--json"]
    bare: float | None = None
    with registry(env) as url:
        if url is None:
            rows.append(Row("health --json (healthy)", "skipped", note="no Docker registry"))
        else:
            config = Path(home) / "team.yaml"
            config.write_text(
                f"backend: docker\nregistry:\n  port: {env['PALLET_DEV_REGISTRY_PORT']}\n"
            )
            with_config = [PALLET_DEV, "--config", str(config), "health", "--json"]
            commands: dict[str, list[str]] = {
                "health": health,
                "health --config": with_config,
                "import httpx": [PYTHON, "-c", "import httpx"],
                "pass": [PYTHON, "-c", "pass"],
            }
            curl = shutil.which("curl")
            if curl:
                commands["curl"] = [curl, "-s", "-o", os.devnull, f"{url}/v2/"]
            samples = interleaved(commands, env, runs)
            bare = median(samples["pass"])
            floor = median(samples["import httpx"])
            for label, key in (
                ("health --json (healthy)", "health"),
                ("--config FILE health --json (healthy)", "health --config"),
            ):
                value = median(samples[key])
                ratio = value / floor
                extra = f"{value / bare:.1f}x python -c pass"
                if curl:
                    extra += f", {value / median(samples['curl']):.1f}x curl"
                rows.append(
                    Row(
                        label,
                        f"{seconds(value)} = {ratio:.2f}x import httpx",
                        f"{BUDGET_HEALTHY_RATIO:.2f}x",
                        verdict(ratio, BUDGET_HEALTHY_RATIO),
                        f"{extra}; {codes(samples[key])}",
                    )
                )
            rows.append(Row('python -c "import httpx"', seconds(floor)))
            if curl:
                rows.append(Row(f"curl -s {url}/v2/", seconds(median(samples["curl"]))))
            rows.append(Row("python -c pass", seconds(bare)))
            peak = max(sample[2] for sample in samples["health"]) / 1024
            rows.append(
                Row(
                    "peak RSS of health --json",
                    f"{peak:.1f} MiB",
                    f"{BUDGET_RSS_MIB:.0f} MiB",
                    verdict(peak, BUDGET_RSS_MIB),
                    f"max of {len(samples['health'])} runs (wait4 ru_maxrss)",
                )
            )
    down_env = {**env, "PALLET_DEV_REGISTRY_PORT": str(free_port())}
    import_httpx = [PYTHON, "-c", "import httpx"]
    samples = interleaved({"down": health, "import httpx": import_httpx}, down_env, runs)
    value = median(samples["down"])
    budget_down = BUDGET_DOWN_RATIO * median(samples["import httpx"])
    rows.append(
        Row(
            "health --json (registry down)",
            seconds(value),
            seconds(budget_down),
            verdict(value, budget_down),
            f"closed port; {codes(samples['down'])}",
        )
    )
    with silent_endpoint() as port:
        silent_env = {**env, "PALLET_DEV_REGISTRY_PORT": str(port)}
        argv = [*health, "--timeout", str(SILENT_TIMEOUT)]
        samples = interleaved(
            {"silent": argv, "import httpx": import_httpx},
            silent_env,
            max(5, runs // 2),
            warmup=1,
        )
    value = median(samples["silent"])
    budget_silent = SILENT_TIMEOUT + BUDGET_DOWN_RATIO * median(samples["import httpx"])
    rows.append(
        Row(
            f"health --json --timeout {SILENT_TIMEOUT:g} (silent)",
            seconds(value),
            seconds(budget_silent),
            verdict(value, budget_silent),
            f"accepts, never answers; {codes(samples['silent'])}",
        )
    )
    return bare


def render(rows: list[Row], runs: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"pallet-dev CLI benchmarks: median of {runs} runs; Python {platform.python_version()} "
        f"on {platform.system()} ({os.cpu_count()} CPUs, load {load:.1f})",
        f"console script: {PALLET_DEV}",
        "",
    ]
    widths = [max(len(getattr(row, f)) for row in rows) for f in ("label", "value", "budget")]
    header = ("scenario", "median", "budget")
    lines.append(
        f"{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:>{widths[2]}}  verdict"
        "  notes"
    )
    for row in rows:
        lines.append(
            f"{row.label:<{widths[0]}}  {row.value:>{widths[1]}}  {row.budget:>{widths[2]}}  "
            f"{row.verdict:<7}  {row.note}".rstrip()
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run only this part (repeatable)"
    )
    args = parser.parse_args()
    if not Path(PALLET_DEV).exists():
        print(f"{PALLET_DEV} not found: install pallet-dev into this interpreter first.")
        return 0
    print(render(bench(args.runs, args.only or PARTS), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
