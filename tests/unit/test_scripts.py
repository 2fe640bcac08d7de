"""The drop-in scripts (scripts/*.sh) run for real.

Each script is copied into a throw-away repository layout and run by bash with a PATH
we control: a fake `pallet-dev` that records its argv (and PALLET_DEV_BACKEND) stands in
for the real one, or no pallet-dev at all. Fake docker/kind/helm/kubectl/uname answer
install-kind.sh the way the real tools do. One test runs bootstrap.sh and kill.sh against
the real Docker daemon with the real pallet-dev.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.core
import typer.main

from pallet_dev.cli import app
from tests.conftest import require_tool, skip_or_fail
from tests.support.http_servers import free_port
from tests.support.real_docker import TEST_IMAGE, require_docker

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ("bootstrap.sh", "bootstrap-k8s.sh", "kill.sh", "install-kind.sh")
WRAPPERS = ("bootstrap.sh", "bootstrap-k8s.sh", "kill.sh")
# what the scripts themselves need from the system; everything else is a fake or absent
BASE_TOOLS = ("bash", "dirname", "sed", "head", "uname", "cat")

FAKE_PALLET_DEV = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_PALLET_DEV_LOG"], "a") as log:
    record = {{"argv": sys.argv[1:], "backend": os.environ.get("PALLET_DEV_BACKEND")}}
    log.write(json.dumps(record) + "\\n")
sys.exit(int(os.environ.get("FAKE_PALLET_DEV_EXIT", "0")))
"""


@dataclass
class Sandbox:
    """A copy of the scripts in a repository layout, with bin folders we control."""

    root: Path
    fakes: Path  # first on PATH
    base: Path  # symlinks to the few system tools the scripts use
    log: Path

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PALLET_DEV_") and key not in {"PATH", "KIND_CLUSTER_NAME"}
        }
        env.update(
            PATH=f"{self.fakes}{os.pathsep}{self.base}",
            FAKE_PALLET_DEV_LOG=str(self.log),
            PALLET_DEV_HOME=str(self.root / "home"),
        )
        return env

    def run(
        self, script: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(self.root / "scripts" / script), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def fake(self, name: str, text: str, folder: Path | None = None) -> Path:
        path = (folder or self.fakes) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
        return path

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    root = tmp_path / "repo"
    (root / "scripts" / "lib").mkdir(parents=True)
    (root / ".ci").mkdir()
    for script in SCRIPTS:
        shutil.copy2(REPO_ROOT / "scripts" / script, root / "scripts" / script)
    shutil.copy2(REPO_ROOT / "scripts/lib/pallet-dev.sh", root / "scripts/lib/pallet-dev.sh")
    shutil.copy2(REPO_ROOT / ".ci" / "versions.env", root / ".ci" / "versions.env")
    base = tmp_path / "base-bin"
    base.mkdir()
    for tool in BASE_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the scripts"
        (base / tool).symlink_to(found)
    fakes = tmp_path / "fake-bin"
    fakes.mkdir()
    return Sandbox(root, fakes, base, tmp_path / "pallet-dev-calls.jsonl")


@pytest.fixture
def fake_pallet_dev(sandbox: Sandbox) -> Sandbox:
    sandbox.fake("pallet-dev", FAKE_PALLET_DEV)
    return sandbox


# --- every script ------------------------------------------------------------------------


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck")
    paths = [str(REPO_ROOT / "scripts" / script) for script in SCRIPTS]
    result = subprocess.run(
        [shellcheck, "-x", *paths], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_without_pallet_dev(sandbox: Sandbox, script: str, flag: str) -> None:
    result = sandbox.run(script, flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
    assert script in result.stdout.splitlines()[0]
    assert sandbox.calls() == []


@pytest.mark.parametrize("script", WRAPPERS)
def test_missing_pallet_dev_exits_3_with_the_install_command(sandbox: Sandbox, script: str) -> None:
    result = sandbox.run(script)
    assert result.returncode == 3
    assert f"{script}: error: pallet-dev is not installed" in result.stderr
    assert "bash scripts/dev-setup.sh" in result.stderr
    assert "pip install -e" in result.stderr
    assert result.stdout == ""


# --- the wrappers pass exactly this to pallet-dev ---------------------------------------


@pytest.mark.parametrize(
    ("script", "args", "argv", "backend"),
    [
        ("bootstrap.sh", [], ["up", "--prefer-docker"], None),
        (
            "bootstrap.sh",
            ["--port", "5001", "--recreate", "--set", "a=b c"],
            ["up", "--prefer-docker", "--port", "5001", "--recreate", "--set", "a=b c"],
            None,
        ),
        ("bootstrap-k8s.sh", [], ["up", "--backend", "kind"], None),
        (
            "bootstrap-k8s.sh",
            ["-f", "my values.yaml", "--dry-run"],
            ["up", "--backend", "kind", "-f", "my values.yaml", "--dry-run"],
            None,
        ),
        ("kill.sh", [], ["down"], None),
        ("kill.sh", ["--clean-logs"], ["down", "--clean"], None),
        ("kill.sh", ["--kind"], ["down", "--backend", "kind"], None),
        (
            "kill.sh",
            ["--kind", "--clean-logs", "--json"],
            ["down", "--clean", "--json", "--backend", "kind"],
            None,
        ),
    ],
)
def test_wrapper_passes_exact_argv(
    fake_pallet_dev: Sandbox,
    script: str,
    args: list[str],
    argv: list[str],
    backend: str | None,
) -> None:
    result = fake_pallet_dev.run(script, *args)
    assert result.returncode == 0, result.stderr
    assert fake_pallet_dev.calls() == [{"argv": argv, "backend": backend}]
    _assert_real_cli_accepts(argv)


def _assert_real_cli_accepts(argv: Sequence[str]) -> None:
    """The argv a script passes is valid for the real CLI (no invented flags)."""
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    parent = root.make_context("pallet-dev", [argv[0]])
    command = root.commands[argv[0]]
    command.make_context(argv[0], list(argv[1:]), parent=parent)  # raises on a bad flag


@pytest.mark.parametrize("script", WRAPPERS)
def test_wrapper_returns_pallet_dev_exit_code(fake_pallet_dev: Sandbox, script: str) -> None:
    result = fake_pallet_dev.run(script, env={"FAKE_PALLET_DEV_EXIT": "4"})
    assert result.returncode == 4
    assert len(fake_pallet_dev.calls()) == 1


def test_kill_without_kind_does_not_restrict_the_backend(fake_pallet_dev: Sandbox) -> None:
    # a backend the user chose (here in the environment) still reaches pallet-dev
    result = fake_pallet_dev.run("kill.sh", env={"PALLET_DEV_BACKEND": "docker"})
    assert result.returncode == 0
    assert fake_pallet_dev.calls() == [{"argv": ["down"], "backend": "docker"}]


@pytest.mark.parametrize("script", WRAPPERS)
def test_wrapper_falls_back_to_the_repo_venv(sandbox: Sandbox, script: str) -> None:
    sandbox.fake("pallet-dev", FAKE_PALLET_DEV, folder=sandbox.root / ".venv" / "bin")
    result = sandbox.run(script)
    assert result.returncode == 0, result.stderr
    assert len(sandbox.calls()) == 1


# --- install-kind.sh ---------------------------------------------------------------------


def _fake_tools(
    sandbox: Sandbox,
    *,
    kind: str | None = "kind v0.33.0 go1.24.1 linux/amd64",
    helm: str | None = "v4.2.4",
    kubectl: bool = True,
    docker_daemon: str | None = "28.2.2",
    pallet_dev: bool = True,
) -> None:
    """Fakes that answer like the real tools; any download tool records that it ran."""
    if kind is not None:
        # old kinds have no -q: fall back to the full line, as the script does
        sandbox.fake("kind", f'#!/bin/sh\n[ "$2" = -q ] && exit 1\necho "{kind}"\n')
    if helm is not None:
        sandbox.fake("helm", f'#!/bin/sh\nprintf "%s" "{helm}"\n')
    if kubectl:
        sandbox.fake(
            "kubectl", '#!/bin/sh\necho \'{"clientVersion": {"gitVersion": "v1.35.0"}}\'\n'
        )
    if docker_daemon is not None:
        if docker_daemon == "down":
            body = (
                'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
                'Is the docker daemon running?" >&2\nexit 1'
            )
        elif docker_daemon == "denied":
            body = 'echo "permission denied while trying to connect to the socket" >&2\nexit 1'
        else:
            body = f'echo "{docker_daemon}"'
        sandbox.fake("docker", f"#!/bin/sh\n{body}\n")
    if pallet_dev:
        sandbox.fake("pallet-dev", FAKE_PALLET_DEV)
    for downloader in ("curl", "wget", "go", "brew", "apt-get", "snap"):
        sandbox.fake(downloader, f'#!/bin/sh\necho "{downloader} $*" >> "{sandbox.log}.dl"\n')


def _no_downloads(sandbox: Sandbox) -> None:
    assert not Path(f"{sandbox.log}.dl").exists(), "install-kind.sh ran a download tool"


def test_install_kind_all_present_exits_0(sandbox: Sandbox) -> None:
    _fake_tools(sandbox)
    result = sandbox.run("install-kind.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in (
        " ✓ docker (daemon 28.2.2 answers)",
        " ✓ kind v0.33.0",
        " ✓ helm v4.2.4",
        " ✓ kubectl v1.35.0",
    ):
        assert line in out
    assert "✗" not in out
    assert "bash scripts/bootstrap-k8s.sh" in out
    assert sandbox.calls() == []  # checking pallet-dev's presence does not run it
    _no_downloads(sandbox)


def test_install_kind_nothing_present_prints_linux_commands(sandbox: Sandbox) -> None:
    sandbox.fake("uname", '#!/bin/sh\n[ "$1" = -m ] && echo x86_64 || echo Linux\n')
    _fake_tools(sandbox, kind=None, helm=None, kubectl=False, docker_daemon=None, pallet_dev=False)
    result = sandbox.run("install-kind.sh")
    assert result.returncode == 3
    out = result.stdout
    pin = _kind_pin()
    for expected in (
        " ✗ docker: not found",
        " ✗ kind: not found",
        f"go install sigs.k8s.io/kind@{pin}",
        f"https://kind.sigs.k8s.io/dl/{pin}/kind-linux-amd64",
        " ✗ helm: not found",
        "https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-4",
        " ✗ kubectl: not found",
        "/bin/linux/amd64/kubectl",
        " ✗ pallet-dev: not installed",
        "bash scripts/dev-setup.sh",
        "5 missing or not ready",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"
    _no_downloads(sandbox)


def test_install_kind_on_macos_prints_brew_commands(sandbox: Sandbox) -> None:
    sandbox.fake("uname", '#!/bin/sh\n[ "$1" = -m ] && echo arm64 || echo Darwin\n')
    _fake_tools(sandbox, kind=None, helm=None, kubectl=False)
    result = sandbox.run("install-kind.sh")
    assert result.returncode == 3
    for tool in ("kind", "helm", "kubectl"):
        assert f"install: brew install {tool}" in result.stdout
    _no_downloads(sandbox)


def test_install_kind_too_old_kind_and_helm(sandbox: Sandbox) -> None:
    _fake_tools(sandbox, kind="kind v0.19.0 go1.20.4 linux/amd64", helm="v2.17.0")
    result = sandbox.run("install-kind.sh")
    assert result.returncode == 3
    assert " ✗ kind v0.19.0 is too old: v0.20.0 or newer is needed" in result.stdout
    assert " ✗ helm v2.17.0: 3.x or 4.x is needed" in result.stdout
    assert "2 missing or not ready" in result.stdout


@pytest.mark.parametrize("kind", ["kind v0.20.0 go1.20 linux/amd64", "kind v1.0.0 go1.30 x"])
def test_install_kind_accepts_the_minimum_and_newer(sandbox: Sandbox, kind: str) -> None:
    _fake_tools(sandbox, kind=kind, helm="v3.22.0")
    assert sandbox.run("install-kind.sh").returncode == 0


@pytest.mark.parametrize(
    ("daemon", "message"),
    [
        ("down", " ✗ docker: the daemon does not answer"),
        ("denied", " ✗ docker: permission denied on the Docker socket"),
    ],
)
def test_install_kind_docker_daemon_problems(sandbox: Sandbox, daemon: str, message: str) -> None:
    _fake_tools(sandbox, docker_daemon=daemon)
    result = sandbox.run("install-kind.sh")
    assert result.returncode == 3
    assert message in result.stdout


def test_install_kind_old_docker_daemon(sandbox: Sandbox) -> None:
    _fake_tools(sandbox, docker_daemon="19.03.15")
    result = sandbox.run("install-kind.sh")
    assert result.returncode == 3
    assert " ✗ docker: the daemon is version 19.03.15; 20.10 or newer is needed" in result.stdout


def test_install_kind_rejects_arguments(sandbox: Sandbox) -> None:
    result = sandbox.run("install-kind.sh", "--now")
    assert result.returncode == 2
    assert "unexpected argument" in result.stderr


def _kind_pin() -> str:
    for line in (REPO_ROOT / ".ci" / "versions.env").read_text().splitlines():
        if line.startswith("KIND_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("KIND_VERSION missing from .ci/versions.env")


# --- the real thing ----------------------------------------------------------------------


def _real_pallet_dev_dir() -> Path:
    beside = Path(sys.executable).parent / "pallet-dev"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.parent
    found = shutil.which("pallet-dev")
    if not found:
        skip_or_fail("pallet-dev is not installed (pip install -e .)")
    assert found is not None
    return Path(found).parent


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def real_environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A unique environment on the real dockerd; removes only what it names."""
    require_docker()  # skips, or fails in CI, without a daemon or the stand-in image
    name = f"pdt-{uuid.uuid4().hex[:8]}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PALLET_DEV_") or key == "PALLET_DEV_REQUIRE_REAL"
    }
    env.update(
        PATH=f"{_real_pallet_dev_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        PALLET_DEV_NAME=name,
        PALLET_DEV_REGISTRY_PORT=str(free_port()),
        PALLET_DEV_REGISTRY_IMAGE=TEST_IMAGE,
        PALLET_DEV_HOME=str(tmp_path / "home"),
        # kill.sh without --kind tears down what the config names; this environment only
        # ever had the Docker backend, so do not depend on the kind backend here
        PALLET_DEV_BACKEND="docker",
    )
    try:
        yield env
    finally:
        _docker("rm", "-f", "-v", f"{name}-registry")
        _docker("volume", "rm", "-f", f"{name}-registry-data")


def _registry_answers(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as response:
            header = response.headers.get("Docker-Distribution-Api-Version")
            return bool(response.status == 200 and header == "registry/2.0")
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.docker
def test_bootstrap_then_kill_against_real_docker(
    real_environment: dict[str, str], tmp_path: Path
) -> None:
    env = real_environment
    name, port = env["PALLET_DEV_NAME"], env["PALLET_DEV_REGISTRY_PORT"]

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / script), *args],
            cwd=tmp_path,  # no pallet-dev.yaml here or above
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )

    up = run("bootstrap.sh", "--timeout", "60")
    assert up.returncode == 0, up.stdout + up.stderr
    assert _registry_answers(port)
    inspect = _docker("container", "inspect", f"{name}-registry")
    assert inspect.returncode == 0
    labels = json.loads(inspect.stdout)[0]["Config"]["Labels"]
    assert labels["dev.pallet.environment"] == name
    assert _docker("volume", "inspect", f"{name}-registry-data").returncode == 0

    down = run("kill.sh", "--clean-logs")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"container {name}-registry" in down.stdout
    assert not _registry_answers(port)
    assert _docker("container", "inspect", f"{name}-registry").returncode != 0
    assert _docker("volume", "inspect", f"{name}-registry-data").returncode != 0
    assert not (Path(env["PALLET_DEV_HOME"]) / "logs").exists()
