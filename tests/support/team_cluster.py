"""A kind cluster and a registry container that play a team's cluster and registry.

Used by tests/e2e/test_cluster_e2e.py and benchmarks/bench_cluster.py. :func:`team_cluster`
acts as the cluster admin would: it points the nodes' containerd at the registry
(hosts.toml), tells cluster DNS the registry's name, creates one namespace per user, applies
the documented Role (docs/shared-cluster-rbac.yaml) there and binds it to one
ServiceAccount per user, whose token alone is in that user's kubeconfig.

The registry's name is this machine's host name when it resolves to a loopback address
(:func:`registry_name`): Docker pushes to it over plain HTTP only then (127.0.0.0/8 is
insecure by default), and agents in pods reach the same name through cluster DNS.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "pallet"
ACCOUNTS = "team-accounts"
CONTEXT = "team-dev"
REFUSED_CONTEXT = "team-prod"


def run(argv: list[str], *, timeout: float = 300, **kwargs: Any) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{argv}: {result.stderr[-2000:]}")
    return result.stdout


def registry_name() -> tuple[str, str] | str:
    """This machine's host name and the loopback address it resolves to, or why not."""
    name = socket.gethostname().lower()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if not address or not ipaddress.ip_address(address).is_loopback:
        return (
            f"the host name {name!r} does not resolve to a loopback address ({address or '-'}), "
            "so Docker cannot push to a plain-HTTP registry by a name pods can resolve too"
        )
    return name, address


@contextmanager
def team_cluster(
    tools: Mapping[str, str],
    node_image: str,
    registry_image: str,
    work: Path,
    users: tuple[str, ...],
    say: Any = print,
) -> Iterator[dict[str, Any]]:
    """The team's cluster and registry, and each user's namespace and kubeconfig; all of it
    deleted again (by its unique names) on the way out."""
    docker, kind, kubectl = tools["docker"], tools["kind"], tools["kubectl"]
    found = registry_name()
    assert not isinstance(found, str), found
    host, address = found
    suffix = secrets.token_hex(3)
    cluster, registry = f"pdtc-{suffix}", f"pdtc-registry-{suffix}"
    with socket.socket() as sock:
        sock.bind((address, 0))
        port = int(sock.getsockname()[1])
    admin_config = work / "admin.kubeconfig"
    kind_config = work / "kind.yaml"
    kind_config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\ncontainerdConfigPatches:\n- |-\n"
        '  [plugins."io.containerd.grpc.v1.cri".registry]\n'
        '    config_path = "/etc/containerd/certs.d"\n'
    )
    try:
        say(f"creating the team cluster {cluster}")
        run([kind, "create", "cluster", "--name", cluster, "--image", node_image, "--config",
             str(kind_config), "--kubeconfig", str(admin_config), "--wait", "300s"],
            timeout=900)  # fmt: skip
        # the team registry: on kind's network, listening on the same port it is published on
        run([docker, "run", "-d", "--name", registry, "--network", "kind", "--pull", "never",
             "-p", f"{address}:{port}:{port}", "--env", f"REGISTRY_HTTP_ADDR=0.0.0.0:{port}",
             registry_image])  # fmt: skip
        admin = [kubectl, "--kubeconfig", str(admin_config), "--context", f"kind-{cluster}"]
        toml = f'[host."http://{registry}:{port}"]\n  capabilities = ["pull", "resolve"]\n'
        folder = f"/etc/containerd/certs.d/{host}:{port}"
        for node in run([kind, "get", "nodes", "--name", cluster]).split():
            run([docker, "exec", "-i", node, "sh", "-c",
                 f"mkdir -p '{folder}' && cat > '{folder}/hosts.toml'"], input=toml)  # fmt: skip
        _point_cluster_dns(admin, host, docker, registry)
        run([*admin, "create", "namespace", ACCOUNTS])
        server, ca = _server_and_ca(admin_config, f"kind-{cluster}")
        yield {
            "admin": admin,
            "registry": f"http://{host}:{port}",
            "registry_host": f"{host}:{port}",
            "users": {user: _user(admin, user, server, ca, work) for user in users},
            "work": work,
            "tools": dict(tools),
        }
    finally:
        subprocess.run([kind, "delete", "cluster", "--name", cluster], capture_output=True,
                       timeout=300)  # fmt: skip
        subprocess.run([docker, "rm", "--force", "--volumes", registry], capture_output=True,
                       timeout=120)  # fmt: skip
        listed = subprocess.run([docker, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                                 f"{host}:{port}/*/*"], capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        if listed.stdout.split():
            subprocess.run([docker, "image", "rm", "--force", *listed.stdout.split()],
                           capture_output=True, timeout=300)  # fmt: skip


def _point_cluster_dns(admin: list[str], host: str, docker: str, registry: str) -> None:
    """Cluster DNS answers the registry's name with the registry container's address."""
    template = '{{(index .NetworkSettings.Networks "kind").IPAddress}}'
    ip = run([docker, "inspect", "--format", template, registry]).strip()
    corefile = json.loads(run([*admin, "-n", "kube-system", "get", "configmap", "coredns",
                               "-o", "json"]))["data"]["Corefile"]  # fmt: skip
    patched = corefile.replace(
        "ready\n", f"ready\n    hosts {{\n       {ip} {host}\n       fallthrough\n    }}\n", 1
    )
    assert patched != corefile, corefile
    patch = json.dumps({"data": {"Corefile": patched}})
    run([*admin, "-n", "kube-system", "patch", "configmap", "coredns", "-p", patch])
    run([*admin, "-n", "kube-system", "rollout", "restart", "deployment/coredns"])
    run([*admin, "-n", "kube-system", "rollout", "status", "deployment/coredns",
         "--timeout=300s"], timeout=320)  # fmt: skip


def _server_and_ca(kubeconfig: Path, context: str) -> tuple[str, str]:
    data = yaml.safe_load(kubeconfig.read_text())
    cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == context)
    return cluster["server"], cluster["certificate-authority-data"]


def _user(admin: list[str], user: str, server: str, ca: str, work: Path) -> dict[str, Any]:
    """The admin's part: the user's namespace, the documented Role bound to their account,
    and a kubeconfig with that account's token alone (plus a context they must not use)."""
    namespace = f"pallet-{user}"
    run([*admin, "create", "namespace", namespace])
    run([*admin, "-n", namespace, "apply", "-f", str(REPO / "docs" / "shared-cluster-rbac.yaml")])
    run([*admin, "-n", ACCOUNTS, "create", "serviceaccount", user])
    run([*admin, "-n", namespace, "create", "rolebinding", "pallet-dev", "--role=pallet-dev",
         f"--serviceaccount={ACCOUNTS}:{user}"])  # fmt: skip
    token = run([*admin, "-n", ACCOUNTS, "create", "token", user, "--duration=3h"]).strip()
    cluster = {"server": server, "certificate-authority-data": ca}
    kubeconfig = work / f"{user}.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "team", "cluster": cluster}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [
                    {"name": name, "context": {"cluster": "team", "user": user}}
                    for name in (CONTEXT, REFUSED_CONTEXT)
                ],
                "current-context": REFUSED_CONTEXT,
            }
        )
    )
    return {"namespace": namespace, "kubeconfig": kubeconfig}


def user_project(
    team: Mapping[str, Any], user: str, context: str = CONTEXT
) -> tuple[Path, dict[str, str]]:
    """A copy of examples/pallet configured for the user on the team's cluster, and the
    environment pallet-dev runs in (their own PALLET_DEV_HOME, kubeconfig and USER)."""
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
        "PATH": team["tools"]["bin_dir"] + os.pathsep + os.environ.get("PATH", ""),
        "PALLET_DEV_HOME": str(work / f"home-{user}"),
        "KUBECONFIG": str(team["users"][user]["kubeconfig"]),
        "USER": user,
        "NO_COLOR": "1",
    }
    for variable in ("PALLET_DEV_NAME", "PALLET_DEV_BACKEND", "PALLET_DEV_REGISTRY_PORT"):
        environ.pop(variable, None)
    return project, environ
