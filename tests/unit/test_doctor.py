"""`pallet-dev doctor` against fake tools on PATH (and once against the real ones).

The fakes are tiny shell scripts: each records its argv in a log, answers the exact
argv doctor sends with output copied from the real tools, and fails loudly (exit 99,
"UNEXPECTED" in the log) on anything else.
"""

from __future__ import annotations

import json
import shlex
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pallet_dev import versions
from pallet_dev.cli import run
from pallet_dev.commands.doctor import (
    CHECKS,
    CheckResult,
    DoctorInputs,
    check_disk,
    check_docker,
    check_inotify,
    render_report,
    run_checks,
)
from pallet_dev.config import Config
from pallet_dev.settings import from_config
from pallet_dev.paths import Paths
from pallet_dev.runner import Runner
from pallet_dev.tools.docker_types import HOST_INFO_TEMPLATE
from tests.conftest import clear_config_env, require_tool
from tests.support.http_servers import free_port

Answer = tuple[str, str, int]  # stdout, stderr, exit code

DOCKER_VERSION = ["version", "--format", "{{json .}}"]
DOCKER_ROOT = ["info", "--format", "{{json .DockerRootDir}}"]
DOCKER_HOST = ["info", "--format", HOST_INFO_TEMPLATE]


def host_info(cgroup: str = "2", security: tuple[str, ...] = (), snapshotter: bool = False) -> str:
    status = [["driver-type", "io.containerd.snapshotter.v1"]] if snapshotter else []
    info = {
        "cgroup": cgroup,
        "security": ["name=seccomp,profile=default", *security],
        "driver_status": status,
        "root_dir": "/var/lib/docker",
    }
    return json.dumps(info) + "\n"


KIND_VERSION = ["version"]
HELM_VERSION = ["version", "--template", "{{.Version}}"]
KUBECTL_VERSION = ["version", "--client", "-o", "json"]

CLIENT = {"Version": "28.2.2", "ApiVersion": "1.41", "Os": "linux", "Context": "default"}
NOT_RUNNING = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?\n"
)
DENIED = (
    "permission denied while trying to connect to the Docker daemon socket at "
    'unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": '
    "dial unix /var/run/docker.sock: connect: permission denied\n"
)


def docker_version(server: str | None) -> str:
    payload = {"Client": CLIENT, "Server": {"Version": server} if server else None}
    return json.dumps(payload) + "\n"


def kubectl_version(git_version: str) -> str:
    return json.dumps({"clientVersion": {"major": "1", "gitVersion": git_version}}, indent=2)


@dataclass
class FakeTools:
    """Fake CLIs in one folder that is the whole PATH."""

    bin: Path
    log: Path
    answers: dict[str, dict[tuple[str, ...], Answer]] = field(default_factory=dict)

    def set(
        self, tool: str, argv: list[str], stdout: str = "", stderr: str = "", code: int = 0
    ) -> None:
        self.answers.setdefault(tool, {})[tuple(argv)] = (stdout, stderr, code)
        self._write(tool)

    def remove(self, tool: str) -> None:
        self.answers.pop(tool, None)
        (self.bin / tool).unlink(missing_ok=True)

    def _write(self, tool: str) -> None:
        lines = ["#!/bin/sh", f'echo "{tool} $*" >> {shlex.quote(str(self.log))}', 'case "$*" in']
        for argv, (out, err, code) in self.answers[tool].items():
            lines.append(f"  {shlex.quote(' '.join(argv))})")
            lines.append(f"    printf '%s' {shlex.quote(out)}")
            lines.append(f"    printf '%s' {shlex.quote(err)} >&2")
            lines.append(f"    exit {code};;")
        lines.append(f'  *) echo "UNEXPECTED {tool} $*" >> {shlex.quote(str(self.log))}')
        lines.append(f'     echo "fake {tool}: unexpected argv: $*" >&2; exit 99;;')
        lines.append("esac")
        path = self.bin / tool
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTools]:
    """Healthy fakes of docker, kind, helm and kubectl; tests change what they need."""
    monkeypatch.chdir(tmp_path)
    clear_config_env(monkeypatch)
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PALLET_DEV_NAME", "pdt-doctor")
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    monkeypatch.delenv("NO_COLOR", raising=False)
    fake = FakeTools(tmp_path / "bin", tmp_path / "calls.log")
    fake.bin.mkdir()
    (tmp_path / "docker-root").mkdir()
    monkeypatch.setenv("PATH", str(fake.bin))
    fake.set("docker", DOCKER_VERSION, docker_version("20.10.24+dfsg1"))
    fake.set("docker", DOCKER_ROOT, json.dumps(str(tmp_path / "docker-root")) + "\n")
    fake.set("docker", DOCKER_HOST, host_info())
    fake.set("kind", KIND_VERSION, "kind v0.33.0 go1.26.8 linux/amd64\n")
    fake.set("helm", HELM_VERSION, "v4.2.4")
    fake.set("kubectl", KUBECTL_VERSION, kubectl_version("v1.37.0"))
    yield fake
    unexpected = [line for line in fake.calls() if line.startswith("UNEXPECTED")]
    assert not unexpected, f"doctor ran commands the fakes do not know: {unexpected}"


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = run(["doctor", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def checks_of(document: dict[str, object]) -> dict[str, dict[str, object]]:
    checks = document["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check for check in checks}


# --- whole runs through the CLI ---------------------------------------------------------


def test_everything_present_is_exit_0_for_every_backend(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    for backend in ("docker", "kind", "auto"):
        code, document = doctor(capsys, "--backend", backend)
        assert code == 0, document
        assert document["ok"] is True and document["errors"] == 0
        checks = checks_of(document)
        assert set(checks) == {
            "config",
            "docker-cli",
            "docker-daemon",
            "kind",
            "helm",
            "kubectl",
            "registry-port",
            "inotify",
            "disk",
            "kind-node-image",
            "cgroup-v1",
        }
        assert checks["docker-daemon"]["version"] == "20.10.24+dfsg1"
        assert checks["docker-cli"]["found"] == str(tools.bin / "docker")
        assert checks["kind"]["version"] == "v0.33.0"
        assert checks["helm"]["version"] == "v4.2.4"
        assert checks["registry-port"]["ok"] is True
    assert document["selected_backend"] == "kind"


def test_one_document_with_every_field(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = doctor(capsys, "--backend", "docker")
    assert code == 0
    assert set(document) == {
        "schema_version",
        "backend",
        "ok",
        "selected_backend",
        "platform",
        "checked_at",
        "duration_ms",
        "errors",
        "warnings",
        "checks",
    }
    for check in checks_of(document).values():
        assert set(check) == {
            "name",
            "title",
            "ok",
            "level",
            "required_for",
            "found",
            "version",
            "problem",
            "fix",
        }
        assert check["level"] in ("ok", "warning", "error")
        assert (check["problem"] is None) == bool(check["ok"])


def test_daemon_not_running_is_told_from_permission_denied(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    tools.set("docker", DOCKER_VERSION, docker_version(None), NOT_RUNNING, 1)
    tools.set("docker", DOCKER_ROOT, '""\n', NOT_RUNNING, 1)
    tools.set("docker", DOCKER_HOST, '""\n', NOT_RUNNING, 1)
    code, document = doctor(capsys, "--backend", "docker")
    daemon = checks_of(document)["docker-daemon"]
    assert code == 3 and document["ok"] is False
    assert daemon["level"] == "error"
    assert daemon["problem"] == "The Docker daemon is not running."
    assert "systemctl start docker" in str(daemon["fix"])
    assert checks_of(document)["docker-cli"]["ok"] is True  # the CLI itself is fine

    tools.set("docker", DOCKER_VERSION, docker_version(None), DENIED, 1)
    tools.set("docker", DOCKER_ROOT, '""\n', DENIED, 1)
    tools.set("docker", DOCKER_HOST, '""\n', DENIED, 1)
    code, document = doctor(capsys, "--backend", "docker")
    daemon = checks_of(document)["docker-daemon"]
    assert code == 3
    assert daemon["problem"] == "Permission denied on the Docker socket."
    assert "docker' group" in str(daemon["fix"])


def test_unknown_daemon_error_shows_the_clis_own_words(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    tools.set("docker", DOCKER_VERSION, "", "context deadline exceeded (Client.Timeout)\n", 1)
    tools.set("docker", DOCKER_ROOT, "", "", 1)
    tools.set("docker", DOCKER_HOST, "", "", 1)
    code, document = doctor(capsys, "--backend", "docker")
    assert code == 3
    assert "context deadline exceeded" in str(checks_of(document)["docker-daemon"]["problem"])


def test_docker_server_older_than_supported(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    tools.set("docker", DOCKER_VERSION, docker_version("19.03.15"))
    code, document = doctor(capsys, "--backend", "docker")
    daemon = checks_of(document)["docker-daemon"]
    assert code == 3
    assert "19.03.15 is older than 20.10" in str(daemon["problem"])


def test_no_docker_at_all(tools: FakeTools, capsys: pytest.CaptureFixture[str]) -> None:
    tools.remove("docker")
    code, document = doctor(capsys)
    checks = checks_of(document)
    assert code == 3
    assert checks["docker-cli"]["problem"] == "'docker' was not found on PATH."
    assert "docs.docker.com" in str(checks["docker-cli"]["fix"])
    assert checks["docker-daemon"]["level"] == "error"
    assert document["selected_backend"] is None


def test_auto_needs_only_the_docker_path_and_warns_about_kind(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    for tool in ("kind", "helm", "kubectl"):
        tools.remove(tool)
    code, document = doctor(capsys, "--backend", "auto")
    checks = checks_of(document)
    assert code == 0
    assert {checks[t]["level"] for t in ("kind", "helm", "kubectl")} == {"warning"}
    assert checks["helm"]["required_for"] == ["kind"]
    assert document["selected_backend"] == "docker"
    assert document["warnings"] == 3 + (checks["inotify"]["level"] == "warning")

    code, document = doctor(capsys, "--backend", "kind")
    assert code == 3
    assert {checks_of(document)[t]["level"] for t in ("kind", "helm", "kubectl")} == {"error"}
    assert document["errors"] == 3


def test_backend_defaults_to_the_config(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools.remove("helm")
    monkeypatch.setenv("PALLET_DEV_BACKEND", "kind")
    code, document = doctor(capsys)
    assert code == 3 and document["backend"] == "kind"
    assert checks_of(document)["helm"]["level"] == "error"


@pytest.mark.parametrize(
    ("output", "level", "words"),
    [
        ("kind v0.19.0 go1.20.4 linux/amd64\n", "error", "too old: v0.20.0 or newer"),
        ("kind v0.25.0 go1.22.9 linux/amd64\n", "warning", "older than v0.33.0"),
        ("kind v0.32.0 go1.26.8 linux/amd64\n", "warning", "older than v0.33.0"),
        ("kind v0.33.0 go1.26.8 linux/amd64\n", "ok", None),
        ("kind (devel)\n", "error", "Cannot read the version"),
    ],
)
def test_kind_versions(
    tools: FakeTools,
    capsys: pytest.CaptureFixture[str],
    output: str,
    level: str,
    words: str | None,
) -> None:
    tools.set("kind", KIND_VERSION, output)
    code, document = doctor(capsys, "--backend", "kind")
    kind = checks_of(document)["kind"]
    assert kind["level"] == level
    assert code == (3 if level == "error" else 0)
    if words:
        assert words in str(kind["problem"])
        assert "sigs.k8s.io/kind@v0.33.0" in str(kind["fix"])


@pytest.mark.parametrize(
    ("output", "ok"),
    [
        ("v4.2.4", True),
        ("v4.2", True),
        ("v3.22", True),
        ("v3.14.4+g81c902a", True),
        ("v2.17.0", False),
    ],
)
def test_helm_majors(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], output: str, ok: bool
) -> None:
    tools.set("helm", HELM_VERSION, output)
    code, document = doctor(capsys, "--backend", "kind")
    helm = checks_of(document)["helm"]
    assert helm["ok"] is ok and code == (0 if ok else 3)
    if not ok:
        assert "Helm 3.x or 4.x is needed" in str(helm["problem"])


def test_kubectl_skew_is_a_warning_against_the_node_images_kubernetes(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools.set("kubectl", KUBECTL_VERSION, kubectl_version("v1.32.4-dispatcher"))
    code, document = doctor(capsys, "--backend", "kind")
    kubectl = checks_of(document)["kubectl"]
    assert code == 0  # skew warns; it does not block
    assert kubectl["level"] == "warning"
    assert "5 minor versions from the cluster's Kubernetes 1.37" in str(kubectl["problem"])

    monkeypatch.setenv("PALLET_DEV_KIND_NODE_IMAGE", "pallet-dev/kind-node:v1.33.2")
    code, document = doctor(capsys, "--backend", "kind")
    assert checks_of(document)["kubectl"]["ok"] is True


def test_port_held_by_a_stranger_is_a_problem_with_a_fix(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(port))
        for name in ("pdt-doctor-registry", "pdt-doctor-control-plane"):
            tools.set(
                "docker", ["container", "inspect", name], "[]\n", f"No such container: {name}", 1
            )
        code, document = doctor(capsys, "--backend", "docker")
    check = checks_of(document)["registry-port"]
    assert code == 3
    assert check["problem"] == f"Port {port} on 127.0.0.1 is already in use."
    assert f"pallet-dev up --port {port + 1}" in str(check["fix"])


def test_port_held_by_our_own_registry_is_fine(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inspect = {
        "Id": "0123456789abcdef",
        "Name": "/pdt-doctor-registry",
        "State": {"Status": "running", "StartedAt": "2026-01-01T00:00:00Z"},
        "Config": {
            "Image": "registry:3.1.2",
            "Labels": {"dev.pallet.managed": "true", "dev.pallet.environment": "pdt-doctor"},
        },
        "HostConfig": {"PortBindings": {}},
    }
    with socket.socket() as registry:
        registry.bind(("127.0.0.1", 0))
        registry.listen(1)
        port = registry.getsockname()[1]
        monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(port))
        bindings = {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        inspect["HostConfig"] = {"PortBindings": bindings}
        tools.set("docker", ["container", "inspect", "pdt-doctor-registry"], json.dumps([inspect]))
        code, document = doctor(capsys, "--backend", "docker")
    check = checks_of(document)["registry-port"]
    assert code == 0, check
    assert "this environment's registry container pdt-doctor-registry" in str(check["found"])


def test_broken_config_is_reported_and_the_other_checks_still_run(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "pallet-dev.yaml").write_text("registry:\n  prot: 5000\n")
    code, document = doctor(capsys, "--backend", "docker")
    checks = checks_of(document)
    assert code == 3
    assert "pallet-dev.yaml:2: registry.prot: unknown key" in str(checks["config"]["problem"])
    assert checks["docker-daemon"]["ok"] is True


def test_human_report_lists_marks_and_fixes_without_colour_off_a_terminal(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    tools.remove("helm")
    tools.set("docker", DOCKER_VERSION, docker_version(None), DENIED, 1)
    tools.set("docker", DOCKER_ROOT, "", DENIED, 1)
    tools.set("docker", DOCKER_HOST, "", DENIED, 1)
    code = run(["doctor", "--backend", "kind"])
    out = capsys.readouterr().out
    assert code == 3
    assert "\033[" not in out
    assert " ✓ docker CLI" in out
    daemon = next(line for line in out.splitlines() if line.startswith(" ✗ Docker daemon"))
    assert daemon.endswith(" Permission denied on the Docker socket.")
    assert " ✗ helm" in out and "fix: Install Helm 3.x or 4.x" in out
    assert "2 problems block the kind backend" in out.splitlines()[-1]


def test_colour_only_when_asked() -> None:
    document = {
        "backend": "docker",
        "errors": 1,
        "warnings": 0,
        "selected_backend": None,
        "checks": [
            CheckResult("helm", "helm", False, ("docker",), problem="x", fix="y").to_dict("docker")
        ],
    }
    assert "\033[31m✗\033[0m" in render_report(document, color=True)
    assert "\033[" not in render_report(document, color=False)


def test_the_run_is_logged(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doctor(capsys, "--backend", "docker")
    lines = [json.loads(line) for line in (tmp_path / "home" / "logs" / "pallet-dev.log").open()]
    execs = [line["argv"] for line in lines if line["event"] == "exec"]
    assert ["docker", *DOCKER_VERSION] in execs
    summary = [line for line in lines if line["event"] == "doctor"]
    assert summary and summary[-1]["backend"] == "docker" and summary[-1]["ok"] is True


# --- single checks with their inputs given directly -------------------------------------


def _inputs(tmp_path: Path, **kwargs: Any) -> DoctorInputs:
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    return DoctorInputs(config=from_config(Config()), runner=Runner(), paths=paths, **kwargs)


def test_inotify_limits(tmp_path: Path) -> None:
    proc = tmp_path / "inotify"
    proc.mkdir()
    (proc / "max_user_watches").write_text("8192\n")
    (proc / "max_user_instances").write_text("128\n")
    [low] = check_inotify(_inputs(tmp_path, inotify_dir=proc, platform="linux"))
    assert low.level("kind") == "warning" and low.advisory
    assert "max_user_watches 8192 < 524288" in str(low.problem)
    assert "max_user_instances 128 < 512" in str(low.problem)
    assert "fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512" in str(low.fix)

    (proc / "max_user_watches").write_text("1048576\n")
    (proc / "max_user_instances").write_text("512\n")
    [fine] = check_inotify(_inputs(tmp_path, inotify_dir=proc, platform="linux"))
    assert fine.ok and fine.found == "max_user_watches=1048576, max_user_instances=512"

    [mac] = check_inotify(_inputs(tmp_path, inotify_dir=proc, platform="darwin"))
    assert mac.ok and "not applicable" in str(mac.found)


def test_low_disk_warns_and_never_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no docker: only the data folder
    [plenty] = check_disk(_inputs(tmp_path, disk_warn_bytes=1))
    assert plenty.ok and f"at {tmp_path} (pallet-dev data)" in str(plenty.found)
    [low] = check_disk(_inputs(tmp_path, disk_warn_bytes=1 << 62))
    assert not low.ok and low.level("docker") == "warning"
    assert "docker system prune" in str(low.fix)


def test_a_check_that_breaks_becomes_a_failed_result(tmp_path: Path) -> None:
    def check_boom(inputs: DoctorInputs) -> list[CheckResult]:
        raise RuntimeError("boom")

    results = run_checks(_inputs(tmp_path), (check_boom,))
    assert [(r.name, r.ok) for r in results] == [("boom", False)]
    assert "RuntimeError: boom" in str(results[0].problem)


def test_a_hung_daemon_is_a_problem_after_the_tool_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\nexec sleep 30\n")
    (fake / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    cli, daemon = check_docker(_inputs(tmp_path, tool_timeout=0.3))
    assert cli.ok and cli.version is None
    assert not daemon.ok and "did not finish within 0.3 s" in str(daemon.problem)


def test_version_helpers() -> None:
    assert versions.parse_version("kind v0.31.0 go1.26.8 linux/amd64") == (0, 31, 0)
    assert versions.parse_version("v4.2") == (4, 2)
    assert versions.parse_version("20.10.24+dfsg1") == (20, 10, 24)
    assert versions.parse_version("devel") is None
    assert versions.at_least((4, 2), (3, 0, 0)) and not versions.at_least((0, 19, 9), (0, 20))
    assert versions.at_least((20, 10), (20, 10))
    assert versions.node_image_kubernetes(Config().kind.node_image) == (1, 37)
    assert versions.node_image_kubernetes("pallet-dev/kind-node:v1.34.4") == (1, 34)
    assert versions.node_image_kubernetes("kindest/node@sha256:abc") is None
    assert versions.kubectl_skew((1, 34, 1), (1, 35)) == 1
    assert versions.kubectl_skew((2, 0), (1, 35)) > versions.KUBECTL_MINOR_SKEW


def test_checks_run_in_parallel(tmp_path: Path) -> None:
    import threading

    barrier = threading.Barrier(3, timeout=5)

    def waiter(inputs: DoctorInputs) -> list[CheckResult]:
        barrier.wait()  # only returns when all three run at once
        return [CheckResult("w", "w", True, ("docker",))]

    assert len(run_checks(_inputs(tmp_path), (waiter, waiter, waiter))) == 3
    assert len(CHECKS) >= 7


# --- the real tools, where they exist ---------------------------------------------------


@pytest.mark.docker
def test_real_tools_on_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("docker")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PALLET_DEV_NAME", "pdt-doctor-real")
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    code, document = doctor(capsys, "--backend", "docker")
    checks = checks_of(document)
    assert checks["docker-cli"]["ok"] is True and checks["docker-cli"]["version"]
    assert checks["docker-daemon"]["ok"] is True, checks["docker-daemon"]
    assert checks["registry-port"]["ok"] is True
    assert code == 0
    if sys.platform.startswith("linux"):
        assert "max_user_watches=" in str(checks["inotify"]["found"])


# --- host preflights (pallet_dev.preflight) ----------------------------------------------

CGROUP_V1_SAFE_IMAGE = versions.KIND_NODE_IMAGES[(0, 30)]


def test_cgroup_v1_host_with_a_1_35_plus_node_image_blocks_kind(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools.set("docker", DOCKER_HOST, host_info(cgroup="1"))
    code, document = doctor(capsys, "--backend", "kind")
    check = checks_of(document)["cgroup-v1"]
    assert code == 3 and check["level"] == "error"
    assert "cgroup v1" in str(check["problem"]) and "Kubernetes 1.37" in str(check["problem"])
    assert CGROUP_V1_SAFE_IMAGE in str(check["fix"]) and "cgroup v2" in str(check["fix"])
    # the Docker backend does not need it
    code, document = doctor(capsys, "--backend", "docker")
    assert code == 0 and checks_of(document)["cgroup-v1"]["level"] == "warning"

    monkeypatch.setenv("PALLET_DEV_KIND_NODE_IMAGE", CGROUP_V1_SAFE_IMAGE)
    code, document = doctor(capsys, "--backend", "kind")
    assert checks_of(document)["cgroup-v1"]["ok"] is True
    assert "cgroup v1" in str(checks_of(document)["cgroup-v1"]["found"])


@pytest.mark.parametrize(
    ("cgroup", "level", "words"), [("1", "error", "cannot start"), ("2", "warning", "delegation")]
)
def test_rootless_daemon(
    tools: FakeTools,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    cgroup: str,
    level: str,
    words: str,
) -> None:
    monkeypatch.setenv("PALLET_DEV_KIND_NODE_IMAGE", CGROUP_V1_SAFE_IMAGE)
    tools.set("docker", DOCKER_HOST, host_info(cgroup=cgroup, security=("name=rootless",)))
    code, document = doctor(capsys, "--backend", "kind")
    check = checks_of(document)["rootless"]
    assert check["level"] == level and words in str(check["problem"])
    assert "--prefer-docker" in str(check["fix"])
    assert code == (3 if level == "error" else 0)


def test_containerd_image_store_warns_with_the_kind_issue(
    tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    tools.set("docker", DOCKER_HOST, host_info(snapshotter=True))
    code, document = doctor(capsys, "--backend", "kind")
    check = checks_of(document)["containerd-image-store"]
    assert code == 0 and check["level"] == "warning"
    assert "kind/issues/3795" in str(check["problem"])
    assert "containerd-snapshotter" in str(check["fix"])


def test_node_image_of_another_kind_release_is_named(
    tools: FakeTools, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    check = checks_of(doctor(capsys, "--backend", "kind")[1])["kind-node-image"]
    assert check["ok"] is True  # the default is the pinned kind's own image
    monkeypatch.setenv("PALLET_DEV_KIND_NODE_IMAGE", versions.KIND_NODE_IMAGES[(0, 31)])
    code, document = doctor(capsys, "--backend", "kind")
    check = checks_of(document)["kind-node-image"]
    assert code == 0 and check["level"] == "warning"
    assert "kind v0.31's default, but kind v0.33.0 is in use" in str(check["problem"])
    assert versions.KIND_NODE_IMAGES[(0, 33)] in str(check["fix"])
    # an image of no known release: nothing to compare
    monkeypatch.setenv("PALLET_DEV_KIND_NODE_IMAGE", "pallet-dev/kind-node:v1.34.4")
    assert "kind-node-image" not in checks_of(doctor(capsys, "--backend", "kind")[1])
