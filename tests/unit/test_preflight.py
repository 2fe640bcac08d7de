"""Host preflights: pure findings, `up` stopping before anything exists, and the real host."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pallet_dev import preflight, versions
from pallet_dev.errors import EXIT_PREREQUISITE, PrerequisiteError
from pallet_dev.runner import Runner
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.docker_types import HostInfo
from tests.conftest import require_tool, skip_or_fail

NEW = versions.KIND_NODE_IMAGES[(0, 33)]  # Kubernetes 1.37
OLD = versions.KIND_NODE_IMAGES[(0, 30)]  # Kubernetes 1.34


@pytest.mark.parametrize(
    ("cgroup", "image", "blocked"),
    [
        ("1", NEW, True),
        ("1", versions.KIND_NODE_IMAGES[(0, 31)], True),  # 1.35, the first that refuses v1
        ("1", OLD, False),
        ("1", "pallet-dev/kind-node:v1.34.4", False),
        ("1", "my/node@sha256:" + "a" * 64, False),  # no version in the tag: not guessed
        ("2", NEW, False),
        ("", NEW, False),  # unknown: never block on a guess
    ],
)
def test_cgroup_v1_and_the_node_images_kubernetes(cgroup: str, image: str, blocked: bool) -> None:
    findings = preflight.node_image_findings(HostInfo(cgroup_version=cgroup), image)
    assert [f.blocking for f in findings] == ([True] if blocked else [])


def test_localhost_must_reach_an_ipv4_loopback_registry() -> None:
    def only(*addresses: str) -> preflight.Resolver:
        return lambda host: list(addresses)

    assert preflight.localhost_findings("127.0.0.1", 5000, only("127.0.0.1", "::1")) == []
    assert preflight.localhost_findings("127.0.0.1", 5000, only("::1", "127.0.0.1")) == []
    assert preflight.localhost_findings("127.0.0.1", 5000, only()) == []  # unresolvable: no claim
    assert preflight.localhost_findings("0.0.0.0", 5000, only("::1")) == []
    (finding,) = preflight.localhost_findings("127.0.0.1", 5001, only("::1"))
    assert finding.blocking and "only to ::1" in finding.problem and "5001" in finding.problem
    assert "/etc/hosts" in finding.fix


def test_enforce_raises_the_first_blocking_finding_and_warns_the_rest() -> None:
    warned: list[str] = []
    soft = preflight.Finding("a", False, "Soft.", "Do a.")
    hard = preflight.Finding("b", True, "Hard.", "Do b.")
    preflight.enforce([soft], warned.append)
    assert warned == ["Soft. Do a."]
    with pytest.raises(PrerequisiteError) as caught:
        preflight.enforce([soft, hard], warned.append)
    assert caught.value.exit_code == EXIT_PREREQUISITE
    assert (caught.value.message, caught.value.hint) == ("Hard.", "Do b.")


def test_host_info_parses_docker_info() -> None:
    info = HostInfo.from_json(
        '{"cgroup":"2","security":["name=seccomp,profile=default","name=rootless"],'
        '"driver_status":[["driver-type","io.containerd.snapshotter.v1"]],"root_dir":"/x"}'
    )
    assert info == HostInfo("2", rootless=True, containerd_store=True, root_dir="/x")
    assert HostInfo.from_json('{"cgroup":null,"security":null,"driver_status":null}') == HostInfo()


def test_the_real_docker_info_is_read(tmp_path: Path) -> None:
    """This machine's daemon: the cgroup version pallet-dev reads is the one Docker reports."""
    require_tool("docker")
    truth = subprocess.run(
        ["docker", "info", "--format", "{{.CgroupVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if truth.returncode != 0:
        skip_or_fail(f"the Docker daemon does not answer: {truth.stderr.strip()[:200]}")
    host = Docker(Runner()).host_info()
    assert host.cgroup_version == truth.stdout.strip() and host.cgroup_version in ("1", "2")
    blocked = bool(preflight.node_image_findings(host, NEW))
    assert blocked is (host.cgroup_version == "1")
    assert host.root_dir


def test_a_node_image_given_by_digest_only_is_known_by_its_release() -> None:
    digest_only = "kindest/node@" + NEW.partition("@")[2]
    (finding,) = preflight.node_image_findings(HostInfo(cgroup_version="1"), digest_only)
    assert finding.blocking and "Kubernetes 1.37" in finding.problem
