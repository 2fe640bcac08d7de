"""The cluster backend end to end: two users' agents side by side on a "team" cluster.

One kind cluster, made here with `kind create cluster`, plays the team's existing cluster,
and a registry container on kind's Docker network plays the team's registry. The fixture
acts as the cluster admin: it points the nodes' containerd at the registry (hosts.toml),
tells cluster DNS its name, creates two namespaces, applies the documented Role
(docs/shared-cluster-rbac.yaml) in each and binds it to one ServiceAccount per user.
pallet-dev then runs as each user with a kubeconfig holding only that account's token.

The registry's name is this machine's host name when it resolves to a loopback address:
Docker pushes to it over plain HTTP only then (127.0.0.0/8 is insecure by default), and
the example planner publishes to the same name from its pod (cluster DNS maps it to the
registry container). Elsewhere the test skips, or fails under PALLET_DEV_REQUIRE_REAL=1.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import skip_or_fail
from tests.e2e import test_kind_e2e as kind_e2e
from tests.e2e.test_kind_e2e import AGENTS_BASE_IMAGE, EXAMPLES, _run, _say
from tests.support.http_servers import free_port
from tests.support.real_docker import TEST_IMAGE

# kind's end-to-end module fixtures: the node image, and the real CLIs on PATH
node_image = kind_e2e.node_image
tools = kind_e2e.tools

pytestmark = [pytest.mark.kind_e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = "team-accounts"
USERS = ("alice", "bob")
CONTEXT = "team-dev"


def _ok(argv: list[str], *, timeout: float = 300, **kwargs: Any) -> str:
    result = _run(argv, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.stderr[-2000:]}"
    return result.stdout


def _registry_name() -> tuple[str, str]:
    """This machine's host name and the loopback address it resolves to."""
    name = socket.gethostname().lower()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if not address or not ipaddress.ip_address(address).is_loopback:
        skip_or_fail(
            f"the host name {name!r} does not resolve to a loopback address ({address or '-'}), "
            "so Docker cannot push to a plain-HTTP registry by a name pods can resolve too"
        )
    return name, address


@pytest.fixture(scope="module")
def team(
    tools: dict[str, str], node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    docker, kind, kubectl_bin = tools["docker"], tools["kind"], tools["kubectl"]
    host, address = _registry_name()
    work = tmp_path_factory.mktemp("team")
    suffix = secrets.token_hex(3)
    cluster, registry = f"pdtc-{suffix}", f"pdtc-registry-{suffix}"
    port = free_port()
    admin_config = work / "admin.kubeconfig"
    kind_config = work / "kind.yaml"
    kind_config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\ncontainerdConfigPatches:\n- |-\n"
        '  [plugins."io.containerd.grpc.v1.cri".registry]\n'
        '    config_path = "/etc/containerd/certs.d"\n'
    )
    try:
        _say(f"creating the team cluster {cluster}")
        _ok([kind, "create", "cluster", "--name", cluster, "--image", node_image, "--config",
             str(kind_config), "--kubeconfig", str(admin_config), "--wait", "300s"],
            timeout=900)  # fmt: skip
        # the team registry: on kind's network, listening on the same port it is published on
        _ok([docker, "run", "-d", "--name", registry, "--network", "kind", "--pull", "never",
             "-p", f"{address}:{port}:{port}", "--env", f"REGISTRY_HTTP_ADDR=0.0.0.0:{port}",
             TEST_IMAGE])  # fmt: skip
        admin = [kubectl_bin, "--kubeconfig", str(admin_config), "--context", f"kind-{cluster}"]
        toml = f'[host."http://{registry}:{port}"]\n  capabilities = ["pull", "resolve"]\n'
        folder = f"/etc/containerd/certs.d/{host}:{port}"
        for node in _ok([kind, "get", "nodes", "--name", cluster]).split():
            _ok([docker, "exec", "-i", node, "sh", "-c",
                 f"mkdir -p '{folder}' && cat > '{folder}/hosts.toml'"], input=toml)  # fmt: skip
        _point_cluster_dns(admin, host, docker, registry)
        _ok([*admin, "create", "namespace", ACCOUNTS])
        server, ca = _server_and_ca(admin_config, f"kind-{cluster}")
        users = {}
        for user in USERS:
            users[user] = _user(admin, user, server, ca, work)
        yield {
            "admin": admin,
            "registry": f"http://{host}:{port}",
            "registry_host": f"{host}:{port}",
            "users": users,
            "work": work,
        }
    finally:
        _run([kind, "delete", "cluster", "--name", cluster], timeout=300)
        _run([docker, "rm", "--force", "--volumes", registry], timeout=120)
        images = _run([docker, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                       f"{host}:{port}/*/*/*"]).stdout.split()  # fmt: skip
        if images:
            _run([docker, "image", "rm", "--force", *images])


def _point_cluster_dns(admin: list[str], host: str, docker: str, registry: str) -> None:
    """Cluster DNS answers the registry's name with the registry container's address."""
    template = '{{(index .NetworkSettings.Networks "kind").IPAddress}}'
    ip = _ok([docker, "inspect", "--format", template, registry]).strip()
    corefile = json.loads(_ok([*admin, "-n", "kube-system", "get", "configmap", "coredns",
                               "-o", "json"]))["data"]["Corefile"]  # fmt: skip
    patched = corefile.replace(
        "ready\n", f"ready\n    hosts {{\n       {ip} {host}\n       fallthrough\n    }}\n", 1
    )
    assert patched != corefile, corefile
    patch = json.dumps({"data": {"Corefile": patched}})
    _ok([*admin, "-n", "kube-system", "patch", "configmap", "coredns", "-p", patch])
    _ok([*admin, "-n", "kube-system", "rollout", "restart", "deployment/coredns"])
    _ok([*admin, "-n", "kube-system", "rollout", "status", "deployment/coredns",
         "--timeout=300s"], timeout=320)  # fmt: skip


def _server_and_ca(kubeconfig: Path, context: str) -> tuple[str, str]:
    data = yaml.safe_load(kubeconfig.read_text())
    cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == context)
    return cluster["server"], cluster["certificate-authority-data"]


def _user(admin: list[str], user: str, server: str, ca: str, work: Path) -> dict[str, Any]:
    """The admin's part: the user's namespace, the documented Role bound to their account,
    and a kubeconfig with that account's token alone (plus a context they must not use)."""
    namespace = f"pallet-{user}"
    _ok([*admin, "create", "namespace", namespace])
    _ok([*admin, "-n", namespace, "apply", "-f", str(REPO / "docs" / "shared-cluster-rbac.yaml")])
    _ok([*admin, "-n", ACCOUNTS, "create", "serviceaccount", user])
    _ok([*admin, "-n", namespace, "create", "rolebinding", "pallet-dev", "--role=pallet-dev",
         f"--serviceaccount={ACCOUNTS}:{user}"])  # fmt: skip
    token = _ok([*admin, "-n", ACCOUNTS, "create", "token", user, "--duration=3h"]).strip()
    kubeconfig = work / f"{user}.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "team",
                        "cluster": {"server": server, "certificate-authority-data": ca},
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [
                    {"name": CONTEXT, "context": {"cluster": "team", "user": user}},
                    {"name": "team-prod", "context": {"cluster": "team", "user": user}},
                ],
                "current-context": "team-prod",
            }
        )
    )
    return {"namespace": namespace, "kubeconfig": kubeconfig}


def _project(
    team: dict[str, Any], user: str, tools: dict[str, str], context: str = CONTEXT
) -> tuple[Path, dict[str, str]]:
    work: Path = team["work"]
    project = work / f"project-{user}-{context}"
    if not project.exists():
        shutil.copytree(EXAMPLES, project)
    config = yaml.safe_load((EXAMPLES / "pallet-dev.yaml").read_text())
    config["backend"] = "cluster"
    config["cluster"] = {
        "context": context,
        "allowed_contexts": [CONTEXT],
        "namespace": "pallet-${USER}",
        "registry": team["registry"],
    }
    (project / "pallet-dev.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    environ = {
        **os.environ,
        "PATH": tools["bin_dir"] + os.pathsep + os.environ.get("PATH", ""),
        "PALLET_DEV_HOME": str(work / f"home-{user}"),
        "KUBECONFIG": str(team["users"][user]["kubeconfig"]),
        "USER": user,
        "NO_COLOR": "1",
    }
    for variable in ("PALLET_DEV_NAME", "PALLET_DEV_BACKEND", "PALLET_DEV_REGISTRY_PORT"):
        environ.pop(variable, None)
    return project, environ


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
    projects = {user: _project(team, user, tools) for user in USERS}

    # a context outside allowed_contexts: refused before anything reaches the cluster
    before = _ok([*admin, "get", "namespaces,secrets,deployments", "-A", "-o", "name"])
    refused_project, refused_env = _project(team, "alice", tools, context="team-prod")
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

    # neither account sees the other's namespace
    alice = [kubectl_bin, "--context", CONTEXT]
    peek = _run([*alice, "-n", "pallet-bob", "get", "deployments"],
                env=projects["alice"][1])  # fmt: skip
    assert peek.returncode != 0 and "forbidden" in peek.stderr.lower(), peek.stdout

    # nothing changed: no build, no Helm upgrade
    again = _json(*projects["alice"], "up")
    assert not again["changed"] and not any(a["built"] for a in again["agents"])

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
        assert kubeconfig["current-context"] == "team-prod"
