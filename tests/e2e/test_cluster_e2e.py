"""The cluster backend end to end: two users' agents side by side on a "team" cluster.

One kind cluster, made here with `kind create cluster`, plays the team's existing cluster,
and a registry container on kind's Docker network plays the team's registry
(tests/support/team_cluster.py, which acts as the cluster admin: containerd's hosts.toml
on the nodes, cluster DNS for the registry's name, one namespace per user with the
documented Role bound to that user's ServiceAccount). pallet-dev runs as each user with a
kubeconfig holding only that account's token.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import skip_or_fail
from tests.e2e.test_kind_e2e import AGENTS_BASE_IMAGE, EXAMPLES, _run, _say
from tests.support.dev_process import DevProcess
from tests.support.real_docker import TEST_IMAGE
from tests.support.team_cluster import (
    CONTEXT,
    REFUSED_CONTEXT,
    registry_name,
    team_cluster,
    user_project,
)

pytestmark = [pytest.mark.kind_e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

USERS = ("alice", "bob")

# the fixtures node_image and tools (the real CLIs on PATH) come from tests/e2e/conftest.py


def _ok(argv: list[str], *, timeout: float = 300, **kwargs: Any) -> str:
    result = _run(argv, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def team(
    tools: dict[str, str], node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    reason = registry_name()
    if isinstance(reason, str):
        skip_or_fail(reason)
    work = tmp_path_factory.mktemp("team")
    with team_cluster(tools, node_image, TEST_IMAGE, work, USERS, say=_say) as made:
        yield made


def _pallet_dev(project: Path, environ: dict[str, str], *args: str, timeout: float = 1200) -> Any:
    started = time.monotonic()
    result = _run([sys.executable, "-m", "pallet_dev", *args], env=environ, cwd=project,
                  timeout=timeout)  # fmt: skip
    _say(f"{environ['USER']}: pallet-dev {' '.join(args)}: exit {result.returncode} in "
         f"{time.monotonic() - started:.1f}s")  # fmt: skip
    return result


def _json(project: Path, environ: dict[str, str], *args: str) -> dict[str, Any]:
    result = _pallet_dev(project, environ, *args, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def _deployments(kubectl: list[str], namespace: str) -> dict[str, str]:
    out = _ok([*kubectl, "-n", namespace, "get", "deployments", "-o", "json"])
    return {
        item["metadata"]["name"]: item["spec"]["template"]["spec"]["containers"][0]["image"]
        for item in json.loads(out)["items"]
    }


def test_two_users_side_by_side_on_a_shared_cluster(
    team: dict[str, Any], tools: dict[str, str]
) -> None:
    docker, kubectl_bin, admin = tools["docker"], tools["kubectl"], team["admin"]
    if _run([docker, "image", "inspect", AGENTS_BASE_IMAGE]).returncode != 0:
        built = _run(["bash", str(EXAMPLES / "base" / "build-base-image.sh"), AGENTS_BASE_IMAGE])
        assert built.returncode == 0, built.stderr
    projects = {user: user_project(team, user) for user in USERS}

    # a context outside allowed_contexts: refused before anything reaches the cluster
    before = _ok([*admin, "get", "namespaces,secrets,deployments", "-A", "-o", "name"])
    refused_project, refused_env = user_project(team, "alice", context=REFUSED_CONTEXT)
    refused = _pallet_dev(refused_project, refused_env, "up")
    assert refused.returncode == 2, refused.stderr
    assert "'team-prod' is not in cluster.allowed_contexts" in refused.stderr
    assert _ok([*admin, "get", "namespaces,secrets,deployments", "-A", "-o", "name"]) == before

    ups = {user: _json(*projects[user], "up", "--timeout", "900") for user in USERS}
    for user in USERS:
        assert sorted(a["name"] for a in ups[user]["agents"]) == ["packer", "planner", "tracker"]
        report = _json(*projects[user], "health")
        assert report["status"] == "healthy", report
        assert all(a["backend"] == "cluster" for a in report["agents"])
        namespace = team["users"][user]["namespace"]
        assert all(f"/namespaces/{namespace}/services/" in a["url"] for a in report["agents"])
        images = _deployments(admin, namespace)
        assert sorted(images) == ["packer", "planner", "tracker"]
        assert all(i.startswith(f"{team['registry_host']}/{user}/") and "@sha256:" in i
                   for i in images.values())  # fmt: skip
        status = _json(*projects[user], "status")
        assert status["backend"] == "cluster" and status["backends"]["cluster"]["exists"]
        assert {a["name"] for a in status["agents"]} == {"packer", "planner", "tracker"}
        logs = _pallet_dev(*projects[user], "logs", "planner", "--tail", "20")
        assert logs.returncode == 0 and "planner: published" in logs.stdout, logs.stderr

    doctor = _json(*projects["alice"], "doctor", "--backend", "cluster")
    checks = {c["name"]: c for c in doctor["checks"]}
    assert doctor["ok"], doctor
    for name in ("cluster-tools", "cluster-context", "cluster-permissions", "cluster-registry"):
        assert checks[name]["ok"], checks[name]

    # neither account sees the other's namespace
    alice = [kubectl_bin, "--context", CONTEXT]
    peek = _run([*alice, "-n", "pallet-bob", "get", "deployments"],
                env=projects["alice"][1])  # fmt: skip
    assert peek.returncode != 0 and "forbidden" in peek.stderr.lower(), peek.stdout

    # nothing changed: no build, no Helm upgrade
    revision = _json(*projects["alice"], "status")["backends"]["cluster"]["release"]["revision"]
    again = _json(*projects["alice"], "up")
    assert not again["changed"] and not any(a["built"] for a in again["agents"])
    status = _json(*projects["alice"], "status")
    assert status["backends"]["cluster"]["release"]["revision"] == revision

    # `dev`: an edit of alice's packer rolls out in her namespace alone
    bob_images = _deployments(admin, "pallet-bob")
    dev = DevProcess(projects["alice"][1], projects["alice"][0], cycle_timeout=180)
    try:
        dev.next("watching", timeout=600)
        (projects["alice"][0] / "agents" / "packer" / "VERSION").write_text("packer-team\n")
        cycle = dev.next("cycle", timeout=300)
        assert cycle["agent"] == "packer" and cycle["ok"], cycle
        _say(f"dev cycle on the team cluster: {cycle['seconds']} s")
    finally:
        assert dev.stop() == 130, "".join(dev.stderr)
    proxy = "/api/v1/namespaces/pallet-alice/services/packer:8080/proxy/cgi-bin/version"
    assert "packer-team" in _ok([*admin, "get", "--raw", proxy])
    assert _deployments(admin, "pallet-bob") == bob_images

    down = _json(*projects["alice"], "down", "--clean")
    assert down["kept"] == ["namespace pallet-alice (pallet-dev did not create it)"]
    assert _deployments(admin, "pallet-alice") == {}
    assert _json(*projects["bob"], "health")["status"] == "healthy"
    assert sorted(_deployments(admin, "pallet-bob")) == ["packer", "planner", "tracker"]
    _json(*projects["bob"], "down", "--clean")
    assert _deployments(admin, "pallet-bob") == {}
    # the user's kubeconfig: read, never written (its current context is still the same)
    for user in USERS:
        kubeconfig = yaml.safe_load(team["users"][user]["kubeconfig"].read_text())
        assert kubeconfig["current-context"] == REFUSED_CONTEXT
