"""Fake kind, helm, kubectl and docker over one small simulated world.

Two seams share this code:

* in-process: ``tests.fakes.runner.FakeToolsRunner`` calls :func:`handle` with the
  state held in memory (fast; most orchestration tests);
* on PATH: ``tests/fakes/bin/{kind,helm,kubectl,docker}`` run this file as a
  program (``python fake_tool.py TOOL ARGS...``); the state lives in the JSON file
  ``$FAKE_TOOLS_STATE`` and every call is appended to ``$FAKE_TOOLS_LOG``.

Docker's part of the world (images, containers, volumes, networks, kind's nodes seen as
containers) is ``fake_docker.py``; kind, kubectl and helm are here.

The fakes answer the way the real CLIs do for the argv pallet-dev sends (JSON for
``-o json``, the real error sentences on stderr with exit 1), check what the real
tools would check (kube context present in the kubeconfig file, Helm 3 rejecting
Helm 4 flags, cert files present for ``kubectl config``), and fail loudly -- exit 97
and ``unexpected argv`` on stderr -- on anything else. Failures are injected with
``state["fail"]``: ``{"match": [tokens in order], "stderr": ..., "code": 1,
"times": N}``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

if __package__:
    from tests.fakes import fake_docker
    from tests.fakes.answers import UNEXPECTED, Answer, Flags, Unexpected, err, out
else:  # run as a program (tests/fakes/bin/*): this folder is first on sys.path
    import fake_docker
    from answers import UNEXPECTED, Answer, Flags, Unexpected, err, out


def new_state(**overrides: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        **fake_docker.new_state(),
        "clusters": {},  # name -> cluster
        "node_files": {},  # node -> {path: content}
        "user_kubeconfig": {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""},
        "configmaps": {},  # "ns/name" -> object
        "releases": {},  # "ns/name" -> release (helm status JSON)
        "helm_version": "v4.2.4",
        "nodes_ready_after": 0,  # `kubectl get nodes` polls answering NotReady first
        "fail": [],
    }
    state.update(overrides)
    return state


def _yaml() -> Any:
    """PyYAML, enabling site-packages first when run as `python -S` (the PATH fakes)."""
    if not sys.flags.no_site or "site" in sys.modules and "yaml" in sys.modules:
        import yaml

        return yaml
    import site

    site.main()
    import yaml

    return yaml


# --------------------------------------------------------------------------- kind


def _kubeconfig_for(name: str, api_port: int) -> str:
    context = f"kind-{name}"

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {
                        "server": f"https://127.0.0.1:{api_port}",
                        "certificate-authority-data": b64(f"ca of {name}"),
                    },
                }
            ],
            "users": [
                {
                    "name": context,
                    "user": {
                        "client-certificate-data": b64(f"cert of {name}"),
                        "client-key-data": b64(f"key of {name}"),
                    },
                }
            ],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        },
        indent=2,
    )


def kind(args: list[str], stdin: str | None, state: dict[str, Any]) -> Answer:
    clusters = state["clusters"]
    if args == ["get", "clusters"]:
        if not clusters:
            return err("No kind clusters found.", 0)
        return "".join(f"{name}\n" for name in sorted(clusters)), "", 0
    if args[:2] == ["create", "cluster"]:
        flags = Flags(args[2:], {"--name", "--config", "--kubeconfig", "--image", "--wait"}, set())
        name = flags.one("--name") or "kind"
        yaml = _yaml()
        config = yaml.safe_load(Path(flags.one("--config") or "").read_text())
        if config.get("apiVersion") != "kind.x-k8s.io/v1alpha4" or config.get("kind") != "Cluster":
            return err("ERROR: failed to create cluster: unknown apiVersion")
        if name in clusters:
            return err(
                f"ERROR: failed to create cluster: node(s) already exist for a cluster with the "
                f'name "{name}"'
            )
        node_spec = config["nodes"][0]
        node = f"{name}-control-plane"
        clusters[name] = {
            "nodes": [node],
            "image": node_spec["image"],
            "ports": node_spec.get("extraPortMappings", []),
            "mounts": node_spec.get("extraMounts", []),
            "running": True,
            "id": f"{state.get('nodes_made', 0) + 1:08x}".ljust(64, "c"),  # a new container
            "started_at": fake_docker.now(),
            "kubeconfig": _kubeconfig_for(name, 40000 + len(clusters)),
            "images": [],
            "polls": 0,
        }
        state["node_files"][node] = {}
        state["nodes_made"] = state.get("nodes_made", 0) + 1
        kubeconfig = flags.one("--kubeconfig")
        if kubeconfig:
            Path(kubeconfig).write_text(clusters[name]["kubeconfig"])
        else:  # kind would merge into the user's kubeconfig and switch to it
            _merge_user(state, clusters[name]["kubeconfig"], f"kind-{name}", switch=True)
        return "", f'Creating cluster "{name}" ...\n ✓ Ensuring node image\n', 0
    if args[:2] == ["delete", "cluster"]:
        flags = Flags(args[2:], {"--name", "--kubeconfig"}, set())
        name = flags.one("--name") or "kind"
        cluster = clusters.pop(name, None)
        if cluster:
            for node in cluster["nodes"]:
                state["node_files"].pop(node, None)
            # the cluster's objects go with it
            for store in ("configmaps", "releases"):
                for key in [k for k, v in state[store].items() if v.get("_cluster") == name]:
                    del state[store][key]
        if not flags.one("--kubeconfig"):
            user = state["user_kubeconfig"]
            for section in ("clusters", "users", "contexts"):
                user[section].pop(f"kind-{name}", None)
            if user["current-context"] == f"kind-{name}":
                user["current-context"] = ""
        return "", f'Deleting cluster "{name}" ...\n', 0
    if args[:2] == ["get", "nodes"]:
        flags = Flags(args[2:], {"--name"}, set())
        name = flags.one("--name") or "kind"
        if name not in clusters:
            return err(f'No kind nodes found for cluster "{name}".', 0)
        return "".join(f"{node}\n" for node in clusters[name]["nodes"]), "", 0
    if args[:2] == ["get", "kubeconfig"]:
        flags = Flags(args[2:], {"--name"}, set())
        name = flags.one("--name") or "kind"
        if name not in clusters:
            return err(
                f"ERROR: could not locate any control plane nodes for cluster named '{name}'."
            )
        return clusters[name]["kubeconfig"] + "\n", "", 0
    if args[:2] == ["load", "docker-image"]:
        flags = Flags(args[2:], {"--name", "--nodes"}, set())
        name = flags.one("--name") or "kind"
        (image,) = flags.positionals
        if name not in clusters:
            return err(f'ERROR: no nodes found for cluster "{name}"')
        if image not in state["host_images"]:
            return err(f'ERROR: image: "{image}" not present locally')
        if image not in clusters[name]["images"]:
            clusters[name]["images"].append(image)
        return (
            "",
            f'Image: "{image}" with ID "sha256:feed" not yet present on node, loading...\n',
            0,
        )
    raise Unexpected("kind")


# --------------------------------------------------------------------------- kubectl


def _merge_user(state: dict[str, Any], kubeconfig: str, context: str, *, switch: bool) -> None:
    data = json.loads(kubeconfig)
    user = state["user_kubeconfig"]
    for section, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        for item in data[section]:
            user[section][item["name"]] = item[key]
    if switch:
        user["current-context"] = context


def _cluster_for_context(
    state: dict[str, Any], kubeconfig: str | None, context: str | None
) -> tuple[str | None, str | None]:
    """(cluster name, error) the way kubectl/helm resolve --kubeconfig and --context."""
    if not context:
        return None, "the fake demands an explicit --context / --kube-context"
    if kubeconfig:
        try:
            data = json.loads(Path(kubeconfig).read_text())
        except (OSError, ValueError):
            try:
                data = _yaml().safe_load(Path(kubeconfig).read_text())
            except OSError:
                return None, f"stat {kubeconfig}: no such file or directory"
        names = [item["name"] for item in data.get("contexts") or []]
    else:
        names = list(state["user_kubeconfig"]["contexts"])
    if context not in names:
        return None, f'error: context "{context}" does not exist'
    name = context.removeprefix("kind-")
    cluster = state["clusters"].get(name)
    if cluster is None or not cluster["running"]:
        return None, (
            "The connection to the server 127.0.0.1:40000 was refused - did you specify the "
            "right host or port?"
        )
    return name, None


# the release's Deployments: selector component → (name, the release record's replicas key)
DEPLOYMENTS = {
    "": ("registry-pallet-registry", "_replicas"),
    "mirrors": ("registry-pallet-registry-mirrors", "_mirror_replicas"),
}


def _deployment_of(selector: str | None) -> tuple[str, str]:
    labels = dict(part.partition("=")[::2] for part in (selector or "").split(","))
    return DEPLOYMENTS["mirrors" if labels.get("app.kubernetes.io/component") == "mirrors" else ""]


def kubectl(args: list[str], stdin: str | None, state: dict[str, Any]) -> Answer:
    kubeconfig = context = None
    while args and args[0] in ("--kubeconfig", "--context"):
        if args[0] == "--kubeconfig":
            kubeconfig = args[1]
        else:
            context = args[1]
        args = args[2:]
    if args[:1] == ["config"]:
        if kubeconfig or context:
            raise Unexpected("kubectl config with --kubeconfig/--context")
        return _kubectl_config(args[1:], state)
    cluster, error = _cluster_for_context(state, kubeconfig, context)
    if error:
        return err(error)
    assert cluster is not None
    if args == ["get", "nodes", "-o", "json"]:
        record = state["clusters"][cluster]
        record["polls"] += 1
        ready = record["polls"] > state["nodes_ready_after"]
        return out(
            {
                "kind": "List",
                "items": [
                    {
                        "metadata": {"name": node},
                        "status": {
                            "conditions": [
                                {"type": "Ready", "status": "True" if ready else "False"}
                            ],
                            "nodeInfo": {"kubeletVersion": "v1.34.4"},
                        },
                    }
                    for node in record["nodes"]
                ],
            }
        )
    if args[:2] == ["get", "configmap"]:
        flags = Flags(args[2:], {"--namespace", "-o"}, set())
        (name,) = flags.positionals
        key = f"{flags.one('--namespace')}/{name}"
        found = state["configmaps"].get(key)
        if found is None or found.get("_cluster") != cluster:
            return err(f'Error from server (NotFound): configmaps "{name}" not found')
        return out({k: v for k, v in found.items() if not k.startswith("_")})
    if args[:1] == ["apply"]:
        expected = ["apply", "--server-side", "--force-conflicts", "--field-manager=pallet-dev"]
        if args != [*expected, "-f", "-"]:
            raise Unexpected("kubectl apply")
        manifest = json.loads(stdin or "")
        applied = manifest["items"] if manifest.get("kind") == "List" else [manifest]
        lines = []
        for item in applied:
            meta = item["metadata"]
            kind = item["kind"].lower()
            lines.append(f"{kind}/{meta['name']} serverside-applied\n")
            if kind == "namespace":
                continue
            store = state["configmaps"] if kind == "configmap" else state.setdefault("secrets", {})
            store[f"{meta['namespace']}/{meta['name']}"] = {**item, "_cluster": cluster}
        return "".join(lines), "", 0
    if args[:2] in (["get", "pods"], ["get", "pvc"]):
        flags = Flags(args[2:], {"--namespace", "-l", "-o"}, set())
        release = state["releases"].get(f"{flags.one('--namespace')}/registry")
        items: list[dict[str, Any]] = []
        if release and release.get("_cluster") == cluster:
            if args[1] == "pods":
                items = [
                    {
                        "metadata": {"name": "registry-pallet-registry-5d9c-abcde"},
                        "spec": {"containers": [{"image": "registry:3.1.2"}]},
                        "status": {
                            "phase": "Running",
                            "containerStatuses": [
                                {"ready": True, "restartCount": 0, "state": {"running": {}}}
                            ],
                        },
                    }
                ]
            else:
                items = [
                    {
                        "metadata": {"name": "registry-pallet-registry"},
                        "spec": {
                            "volumeName": "pallet-registry-pallet-registry-data",
                            "storageClassName": "",
                        },
                        "status": {
                            "phase": state.get("pvc_phase", "Bound"),
                            "capacity": {"storage": "100Mi"},
                        },
                    }
                ]
        return out({"kind": "List", "items": items})
    if args[:2] == ["get", "deployments"]:
        flags = Flags(args[2:], {"--namespace", "-l", "-o"}, set())
        release = state["releases"].get(f"{flags.one('--namespace')}/registry")
        items = []
        if release and release.get("_cluster") == cluster:
            name, key = _deployment_of(flags.one("-l"))
            items = [{"metadata": {"name": name}, "spec": {"replicas": release.get(key, 1)}}]
        return out({"kind": "List", "items": items})
    if args[:1] == ["scale"]:
        flags = Flags(args[1:], {"--namespace", "--replicas"}, set())
        release = state["releases"].get(f"{flags.one('--namespace')}/registry")
        keys = {f"deployment/{name}": key for name, key in DEPLOYMENTS.values()}
        if len(flags.positionals) != 1 or flags.positionals[0] not in keys or not release:
            return err(f"Error from server (NotFound): {flags.positionals} not found")
        release[keys[flags.positionals[0]]] = int(flags.one("--replicas") or 0)
        return f"deployment.apps/{flags.positionals[0].partition('/')[2]} scaled\n", "", 0
    if args[:3] == ["wait", "--for=delete", "pods"]:
        flags = Flags(args[3:], {"--namespace", "-l", "--timeout"}, set())
        release = state["releases"].get(f"{flags.one('--namespace')}/registry")
        if release and release.get(_deployment_of(flags.one("-l"))[1], 1):
            return err("error: timed out waiting for the condition on pods/registry-pallet")
        return err("error: no matching resources found")
    if args[:3] == ["rollout", "status", "--namespace"]:
        return 'deployment "registry-pallet-registry" successfully rolled out\n', "", 0
    if args[:1] == ["annotate"]:
        flags = Flags(args[1:], {"--namespace"}, {"--overwrite"})
        target, annotation = flags.positionals
        state.setdefault("annotations", {}).setdefault(target, []).append(annotation)
        if state.get("pvc_phase") == "Pending" and target.startswith("pvc/"):
            state["pvc_phase"] = "Bound"  # the binder looks again, and finds its volume
        return f"{target} annotated\n", "", 0
    if args[:3] == ["rollout", "status", "deployment"]:
        flags = Flags(args[3:], {"--namespace", "-l", "--timeout"}, set())
        release = state["releases"].get(f"{flags.one('--namespace')}/registry")
        if not release or release.get("_cluster") != cluster:
            return err(f"error: no deployments found in namespace {flags.one('--namespace')}")
        return 'deployment "registry-pallet-registry" successfully rolled out\n', "", 0
    raise Unexpected("kubectl")


def _kubectl_config(args: list[str], state: dict[str, Any]) -> Answer:
    user = state["user_kubeconfig"]
    if args == ["view", "--raw", "-o", "json"]:
        return out(
            {
                "kind": "Config",
                "apiVersion": "v1",
                "clusters": [{"name": k, "cluster": v} for k, v in user["clusters"].items()],
                "users": [{"name": k, "user": v} for k, v in user["users"].items()],
                "contexts": [{"name": k, "context": v} for k, v in user["contexts"].items()],
                "current-context": user["current-context"],
            }
        )

    def embedded(path: str | None) -> str:
        if not path or not Path(path).is_file():
            raise Unexpected(f"kubectl config: certificate file {path} does not exist")
        return base64.b64encode(Path(path).read_bytes()).decode()

    if args[:1] == ["set-cluster"]:
        flags = Flags(args[1:], {"--server", "--certificate-authority"}, {"--embed-certs=true"})
        (name,) = flags.positionals
        user["clusters"][name] = {
            "server": flags.one("--server"),
            "certificate-authority-data": embedded(flags.one("--certificate-authority")),
        }
        return f'Cluster "{name}" set.\n', "", 0
    if args[:1] == ["set-credentials"]:
        flags = Flags(args[1:], {"--client-certificate", "--client-key"}, {"--embed-certs=true"})
        (name,) = flags.positionals
        user["users"][name] = {
            "client-certificate-data": embedded(flags.one("--client-certificate")),
            "client-key-data": embedded(flags.one("--client-key")),
        }
        return f'User "{name}" set.\n', "", 0
    if args[:1] == ["set-context"]:
        flags = Flags(args[1:], {"--cluster", "--user"}, set())
        (name,) = flags.positionals
        user["contexts"][name] = {"cluster": flags.one("--cluster"), "user": flags.one("--user")}
        return f'Context "{name}" modified.\n', "", 0
    raise Unexpected("kubectl config")


# --------------------------------------------------------------------------- helm

HELM_VALUE_FLAGS = {
    "--namespace",
    "--kube-context",
    "--kubeconfig",
    "--values",
    "--timeout",
    "--description",
    "--output",
    "-o",
    "--template",
    "--max",
}


def helm(args: list[str], stdin: str | None, state: dict[str, Any]) -> Answer:
    major = int(state["helm_version"].lstrip("v").split(".")[0])
    if args == ["version", "--template", "{{.Version}}"]:
        return state["helm_version"], "", 0
    booleans = {"--install", "--create-namespace", "--wait", "--atomic"}
    if major >= 4:
        booleans |= {
            "--rollback-on-failure",
            "--wait=watcher",
            "--wait=legacy",
            "--force-conflicts",
        }
    try:
        flags = Flags(args[1:], HELM_VALUE_FLAGS, booleans)
    except Unexpected as exc:
        if major == 3 and ("--rollback-on-failure" in str(exc) or "--wait=" in str(exc)):
            return err(f"Error: {exc}")  # what Helm 3 says about Helm 4 flags
        raise
    cluster, error = _cluster_for_context(
        state, flags.one("--kubeconfig"), flags.one("--kube-context")
    )
    if error:
        return err(f"Error: kubernetes cluster unreachable: {error}")
    namespace = flags.one("--namespace") or "default"
    if args[:1] == ["history"]:
        (name,) = flags.positionals
        release = state["releases"].get(f"{namespace}/{name}")
        if release is None or release.get("_cluster") != cluster:
            return err("Error: release: not found")
        if flags.one("-o") != "json" or flags.one("--max") != "1":
            raise Unexpected("helm history without --max 1 -o json")
        meta = release["chart"]["metadata"]
        return out(
            [
                {
                    "revision": release["version"],
                    "updated": release["info"]["last_deployed"],
                    "status": release["info"]["status"],
                    "chart": f"{meta['name']}-{meta['version']}",
                    "app_version": meta["appVersion"],
                    "description": release["info"]["description"],
                }
            ]
        )
    if args[:1] in (["rollback"], ["uninstall"]):
        (name,) = flags.positionals
        key = f"{namespace}/{name}"
        release = state["releases"].get(key)
        if release is None or release.get("_cluster") != cluster:
            return err("Error: release: not found")
        if args[0] == "uninstall":
            del state["releases"][key]
            return out(f'release "{name}" uninstalled')
        release["version"] += 1
        release["info"].update(status="deployed", description="Rollback")
        return out("Rollback was a success! Happy Helming!")
    if args[:1] == ["upgrade"]:
        previous = state["releases"].get(f"{namespace}/{flags.positionals[0]}")
        if previous and str(previous["info"]["status"]).startswith("pending-"):
            return err("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) "
                       "is in progress")  # fmt: skip
        if "--install" not in flags.booleans or flags.one("--output") != "json":
            raise Unexpected("helm upgrade")
        wanted = (
            {"--rollback-on-failure", "--wait=watcher"} if major >= 4 else {"--atomic", "--wait"}
        )
        if not wanted <= flags.booleans:
            raise Unexpected(f"helm {major} upgrade without {sorted(wanted)}")
        name, chart = flags.positionals
        yaml = _yaml()
        meta = yaml.safe_load((Path(chart) / "Chart.yaml").read_text())
        config: dict[str, Any] = {}
        for values_file in flags.values.get("--values", []):
            config.update(yaml.safe_load(Path(values_file).read_text()) or {})
        key = f"{namespace}/{name}"
        previous = state["releases"].get(key)
        revision = (previous["version"] if previous else 0) + 1
        release = {
            "name": name,
            "namespace": namespace,
            "version": revision,
            "info": {
                "status": "deployed",
                "description": flags.one("--description") or "Upgrade complete",
                "last_deployed": "2026-01-01T00:00:00Z",
            },
            "chart": {
                "metadata": {
                    "name": meta["name"],
                    "version": str(meta["version"]),
                    "appVersion": str(meta.get("appVersion", "")),
                }
            },
            "config": config,
            "_cluster": cluster,
        }
        state["releases"][key] = release
        return out({k: v for k, v in release.items() if not k.startswith("_")})
    raise Unexpected("helm")


# --------------------------------------------------------------------------- dispatch


def served_ports(state: dict[str, Any]) -> set[int]:
    """Host ports a registry answers on: a running kind cluster's mapped ports while the
    registry release is deployed on it (the NodePort behind them), and the ports running
    containers publish."""
    ports = fake_docker.published_ports(state)
    for name, cluster in state["clusters"].items():
        deployed = any(
            r.get("_cluster") == name and r.get("_replicas", 1) for r in state["releases"].values()
        )
        if deployed and cluster["running"]:
            ports |= {int(p["hostPort"]) for p in cluster["ports"]}
    return ports


TOOLS = {"kind": kind, "docker": fake_docker.docker, "kubectl": kubectl, "helm": helm}


def injected_failure(tool: str, args: list[str], state: dict[str, Any]) -> dict[str, Any] | None:
    for rule in state["fail"]:
        tokens, position = rule["match"], 0
        for arg in [tool, *args]:
            if position < len(tokens) and arg == tokens[position]:
                position += 1
        if position == len(tokens) and rule.get("times", 1) != 0:
            rule["times"] = rule.get("times", 1) - 1
            return dict(rule)
    return None


def handle(tool: str, args: list[str], stdin: str | None, state: dict[str, Any]) -> Answer:
    """Answer one call: (stdout, stderr, exit code). Raises Unexpected on unknown argv."""
    failure = injected_failure(tool, args, state)
    if failure is not None:
        return "", failure.get("stderr", "injected failure") + "\n", int(failure.get("code", 1))
    try:
        return TOOLS[tool](args, stdin, state)
    except (ValueError, KeyError, IndexError) as exc:
        raise Unexpected(f"{tool}: {type(exc).__name__}: {exc}") from exc


def main(argv: list[str]) -> int:
    import fcntl

    tool, args = argv[0], argv[1:]
    state_path = Path(os.environ["FAKE_TOOLS_STATE"])
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    # pallet-dev runs independent steps at once: one call at a time changes the state
    with open(f"{state_path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _serve(tool, args, stdin, state_path)


def _serve(tool: str, args: list[str], stdin: str | None, state_path: Path) -> int:
    state = json.loads(state_path.read_text())
    entry: dict[str, Any] = {"tool": tool, "argv": [tool, *args]}
    try:
        stdout, stderr, code = handle(tool, args, stdin or None, state)
    except Unexpected as exc:
        entry["unexpected"] = str(exc)
        stdout, stderr = "", f"fake {tool}: unexpected argv {[tool, *args]} ({exc})\n"
        code = UNEXPECTED
    entry["exit"] = code
    state_path.with_suffix(".tmp").write_text(json.dumps(state, indent=1))
    state_path.with_suffix(".tmp").replace(state_path)  # the test's watcher never reads half
    with open(os.environ["FAKE_TOOLS_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
