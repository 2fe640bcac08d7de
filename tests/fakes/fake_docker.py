"""Fake docker: one simulated daemon behind both seams.

The in-process runner (``tests.fakes.runner.FakeToolsRunner``) and the executable on PATH
(``tests/fakes/bin/docker``, through ``fake_tool.py``) both answer with :func:`docker`, over
the keys :func:`new_state` adds to the fake world: images, containers, volumes, networks and
the daemon's health. A kind cluster's node is a container as well; its record stays with its
cluster (``state["clusters"]``), so `container inspect`, `start` and `exec` on a node answer
from there, and `exec` reads and writes the node's files (``state["node_files"]``).

Answers are what the real CLI prints for the argv pallet-dev sends: JSON for `inspect` and
`--format '{{json ...}}'`, the daemon's error sentences on stderr with its exit codes. Any
other argv raises Unexpected. Nothing here serves HTTP: each seam starts a registry-like
server on every port :func:`published_ports` lists.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

if __package__:
    from tests.fakes.answers import Answer, Flags, Unexpected, err, out
else:  # run as a program (tests/fakes/bin/*): this folder is first on sys.path
    from answers import Answer, Flags, Unexpected, err, out

CONTAINER_ID = "0123456789abcdef" * 4
WRITE_SCRIPT = 'mkdir -p "$1" && cat > "$2.tmp" && mv -f "$2.tmp" "$2"'
WRITE_FILES_SCRIPT = (
    'while [ "$#" -gt 1 ]; do mkdir -p "${1%/*}" && printf %s "$2" > "$1.tmp"'
    ' && mv -f "$1.tmp" "$1" || exit 1; shift 2; done'
)
RUN_VALUE_FLAGS = {
    "--pull",
    "--name",
    "--restart",
    "--label",
    "--publish",
    "--mount",
    "--env",
    "--network",
    "--memory",
    "--cpus",
}


def new_state() -> dict[str, Any]:
    return {
        "docker": "up",  # the daemon: up | down | denied
        "host_images": ["registry:3.1.2"],
        "pullable": [],  # what `docker pull` finds
        "containers": {},  # name -> new_container(); kind's nodes live with their cluster
        "volumes": {},  # name -> labels
        "networks": {},  # name -> labels
        "bind_fails": False,  # `docker run` creates the container, then cannot bind its port
        # a folder holding each volume's files (`docker cp`, sizes); None: volumes hold nothing
        "volume_root": None,
    }


def new_container(
    image: str,
    labels: dict[str, str] | None = None,
    ports: list[dict[str, str]] | None = None,
    *,
    running: bool = True,
) -> dict[str, Any]:
    """A container record; ``ports`` as ``{"hostIp", "hostPort", "containerPort"}``."""
    return {
        "image": image,
        "labels": labels or {},
        "ports": ports or [],
        "env": [],
        "running": running,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def now() -> str:
    """The daemon's clock as `inspect` spells StartedAt."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"


def image_id(state: dict[str, Any], image: str) -> str:
    return str(state.get("image_ids", {}).get(image, "sha256:feed"))


def published_ports(state: dict[str, Any]) -> set[int]:
    """The host ports running containers (not kind's nodes) publish."""
    return {
        int(port["hostPort"])
        for container in state["containers"].values()
        if container["running"]
        for port in container["ports"]
        if port["hostPort"].isdigit()
    } | {
        int(port["bound"])
        for container in state["containers"].values()
        if container["running"]
        for port in container["ports"]
        if port.get("bound")
    }


def docker(args: list[str], stdin: str | None, state: dict[str, Any]) -> Answer:
    if state["docker"] == "down":
        return err(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?"
        )
    if state["docker"] == "denied":
        return err("permission denied while trying to connect to the Docker daemon socket")
    if args == ["version", "--format", "{{json .Server.Version}}"]:
        return '"27.5.1"\n', "", 0
    if args == ["info", "--format", "{{json .RegistryConfig.Mirrors}}"]:
        return json.dumps(state.get("registry_mirrors", [])) + "\n", "", 0
    if args[:2] == ["info", "--format"] and len(args) == 3:
        info = {"cgroup": "2", "security": ["name=seccomp,profile=default"], "driver_status": [],
                "root_dir": "/var/lib/docker", **state.get("docker_info", {})}  # fmt: skip
        return json.dumps(info) + "\n", "", 0
    if args[:1] == ["run"]:
        return _run(args[1:], state)
    if args[:1] == ["exec"]:
        return _exec(args[1:], stdin, state)
    if args[:1] == ["pull"] and len(args) == 2:
        if args[1] not in state["pullable"]:
            return err(f"Error response from daemon: pull access denied for {args[1]}")
        if args[1] not in state["host_images"]:
            state["host_images"].append(args[1])
        return f"Pulled {args[1]}\n", "", 0
    if args[:4] == ["image", "ls", "--format", "{{json .}}"] and len(args) == 5:
        # the newest first: the fake's images in reverse order of their arrival
        found = [i for i in reversed(state["host_images"]) if i.rpartition(":")[0] == args[4]]
        rows = [{"Repository": i.rpartition(":")[0], "Tag": i.rpartition(":")[2]} for i in found]
        return "".join(json.dumps(row) + "\n" for row in rows), "", 0
    if args[:2] == ["image", "rm"] and len(args) >= 3:
        out, errors = "", ""
        for ref in args[2:]:
            if ref in state.get("images_in_use", ()):
                errors += f"Error response from daemon: conflict: unable to remove {ref}\n"
            elif ref in state["host_images"]:
                state["host_images"].remove(ref)
                out += f"Untagged: {ref}\n"
            else:
                errors += f"Error response from daemon: No such image: {ref}\n"
        return out, errors, 1 if errors else 0
    if args[:3] == ["image", "inspect", "--format"] and len(args) == 5:
        if args[4] not in state["host_images"]:
            return err(f"Error response from daemon: No such image: {args[4]}")
        return image_id(state, args[4]) + "\n", "", 0
    if args[:1] == ["inspect"] and len(args) >= 2 and not args[1].startswith("-"):
        return _inspect_any(args[1:], state)
    if args[:1] == ["container"]:
        return _container(args[1:], state)
    if args[:2] == ["volume", "ls"]:
        return _volume_ls(args[2:], state)
    if args[:1] == ["volume"] and len(args) == 3:
        return _volume(args[1], args[2], state)
    if args[:1] == ["network"]:
        return _network(args[1:], state)
    if args == ["system", "df", "--verbose", "--format", "{{json .Volumes}}"]:
        sizes = [{"Name": n, "Size": _volume_size(state, n)} for n in state["volumes"]]
        return json.dumps(sizes) + "\n", "", 0
    raise Unexpected("docker")


def _no_such_container(name: str) -> str:
    return f"Error response from daemon: No such container: {name}"


def _node_cluster(state: dict[str, Any], node: str) -> dict[str, Any] | None:
    return next((c for c in state["clusters"].values() if node in c["nodes"]), None)


def _record(state: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The container's record; a kind node's is read from its cluster."""
    if name in state["containers"]:
        return state["containers"][name]
    cluster = _node_cluster(state, name)
    if cluster is None:
        return None
    ports = [
        {
            "hostIp": p.get("listenAddress", "0.0.0.0"),
            "hostPort": str(p["hostPort"]),
            "containerPort": str(p["containerPort"]),
        }
        for p in cluster["ports"]
    ]
    node = new_container(cluster["image"], ports=ports, running=cluster["running"])
    node["id"], node["started_at"] = cluster.get("id"), cluster.get("started_at", "")
    node["mounts"] = [
        {"Source": m["hostPath"], "Destination": m["containerPath"]} for m in cluster["mounts"]
    ]
    return node


def _inspect(name: str, record: dict[str, Any]) -> dict[str, Any]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in record["ports"]:
        bindings.setdefault(f"{port['containerPort']}/tcp", []).append(
            {"HostIp": port["hostIp"], "HostPort": port["hostPort"]}
        )
    status = "running" if record["running"] else "exited"
    # as Docker: a chosen host port, or the one it picked for `IP::PORT`
    bound = {
        f"{port['containerPort']}/tcp": [
            {"HostIp": port["hostIp"], "HostPort": port.get("bound") or port["hostPort"]}
        ]
        for port in record["ports"]
        if port.get("bound") or port["hostPort"].isdigit()
    }
    return {
        "NetworkSettings": {"Ports": bound},
        "Id": record.get("id") or CONTAINER_ID,
        "Name": "/" + name,
        "Image": "sha256:feed",
        "RestartCount": 0,
        "State": {"Status": status, "StartedAt": record.get("started_at", "")},
        "Config": {"Image": record["image"], "Labels": record["labels"], "Env": record["env"]},
        "HostConfig": {"PortBindings": bindings},
        "Mounts": record.get("mounts", []),
    }


def _inspect_any(names: list[str], state: dict[str, Any]) -> Answer:
    """`docker inspect NAME...`: a container by that name first, else a host image."""
    found, missing = [], []
    for name in names:
        record = _record(state, name)
        if record is not None:
            found.append(_inspect(name, record))
        elif name in state["host_images"]:
            found.append({"Id": image_id(state, name), "RepoTags": [name]})
        else:
            missing.append(f"Error: No such object: {name}\n")
    return json.dumps(found, indent=2) + "\n", "".join(missing), 1 if missing else 0


def _container(args: list[str], state: dict[str, Any]) -> Answer:
    containers = state["containers"]
    if args[:1] == ["inspect"] and len(args) >= 2:
        found = [(name, _record(state, name)) for name in args[1:]]
        stdout = json.dumps([_inspect(n, r) for n, r in found if r is not None], indent=2) + "\n"
        missing = [_no_such_container(n) for n, r in found if r is None]
        return stdout, "".join(f"{line}\n" for line in missing), 1 if missing else 0
    if args[:1] == ["start"] and len(args) == 2:
        holder = containers.get(args[1]) or _node_cluster(state, args[1])
        if holder is None:
            return err(_no_such_container(args[1]))
        holder["running"] = True
        holder["started_at"] = now()
        return args[1] + "\n", "", 0
    if args[:2] == ["stop", "--time"] and len(args) == 4:
        if args[3] not in containers:
            return err(_no_such_container(args[3]))
        containers[args[3]]["running"] = False
        return args[3] + "\n", "", 0
    if args[:3] == ["rm", "--force", "--volumes"] and len(args) == 4:
        if containers.pop(args[3], None) is None:
            return err(_no_such_container(args[3]))
        return args[3] + "\n", "", 0
    if args[:1] == ["cp"] and len(args) == 3:
        return _copy(args[1], args[2], state)
    if args[:1] == ["ls"]:
        flags = Flags(args[1:], {"--format", "--filter"}, {"--all", "--no-trunc"})
        if flags.one("--format") != "{{json .Names}}" or flags.positionals:
            raise Unexpected("docker container ls")
        wanted = _label_filters(flags, "docker container ls")
        names = [
            name
            for name, container in containers.items()
            if (container["running"] or "--all" in flags.booleans)
            and _matches(container["labels"], wanted)
        ]
        return "".join(json.dumps(name) + "\n" for name in names), "", 0
    raise Unexpected("docker container")


GC_OUTPUT = (
    "pdt/app\n\n3 blobs marked, 2 blobs and 1 manifests eligible for deletion\n"
    "pdt/app: layer link eligible for deletion: sha256:0123\n"
)


def _run_once(args: list[str], state: dict[str, Any]) -> Answer:
    """`docker run --rm ... IMAGE garbage-collect CONFIG [--delete-untagged]` (registry gc)."""
    command = next(i for i, arg in enumerate(args) if arg == "garbage-collect")
    flags = Flags(args[: command - 1], RUN_VALUE_FLAGS, {"--rm"})
    image = args[command - 1]
    if flags.one("--pull") != "never" or flags.one("--network") != "none":
        raise Unexpected("docker run --rm: a one-off gc runs without pulling or a network")
    if image not in state["host_images"]:
        return err(f"docker: Error response from daemon: No such image: {image}", 125)
    # what ran meanwhile: the registry container, and the kind registry's replicas
    running = [name for name, c in state["containers"].items() if c["running"]]
    replicas = [r.get("_replicas", 1) for r in state.get("releases", {}).values()]
    state.setdefault("gc_runs", []).append(
        {
            "image": image,
            "mounts": flags.all("--mount"),
            "args": args[command:],
            "running": running,
            "registry_replicas": replicas,
        }
    )
    return GC_OUTPUT, "", 0


def _run(args: list[str], state: dict[str, Any]) -> Answer:
    if args[:1] == ["--rm"] and "garbage-collect" in args:
        return _run_once(args, state)
    flags = Flags(args, RUN_VALUE_FLAGS, {"--detach"})
    if flags.one("--pull") != "never":
        raise Unexpected("docker run without --pull never: run must never pull by itself")
    name, (image,) = flags.one("--name"), flags.positionals
    if image not in state["host_images"]:
        return err(f"docker: Error response from daemon: No such image: {image}", 125)
    if name in state["containers"]:
        return err(
            f'docker: Error response from daemon: Conflict. The container name "/{name}" '
            'is already in use by container "0123". You have to remove (or rename) that '
            "container to be able to reuse that name.",
            125,
        )
    ports = []
    for publish in flags.all("--publish"):
        host_ip, host_port, container_port = publish.rsplit(":", 2)
        record = {"hostIp": host_ip, "hostPort": host_port, "containerPort": container_port}
        if not host_port and "dev.pallet.mirror" in str(flags.all("--label")):
            # as Docker: `IP::PORT` binds a free host port (shown under NetworkSettings)
            record["bound"] = str(free_port())
        ports.append(record)
    mounts = {}
    for mount in flags.all("--mount"):
        fields = [part.partition("=")[::2] for part in mount.split(",")]
        if ("type", "bind") in fields:
            continue  # a host file or folder: no volume
        source = next(value for key, value in fields if key == "src")
        mounts[next(value for key, value in fields if key == "dst")] = source
        labels = dict(value.split("=", 1) for key, value in fields if key == "volume-label")
        state["volumes"].setdefault(source, labels)
    container = new_container(image, _labels(flags), ports)
    container["env"] = flags.all("--env")
    container["volume_mounts"] = mounts
    state["containers"][name] = container
    if state["bind_fails"]:
        container["running"] = False
        return err(
            "Error response from daemon: driver failed programming external "
            "connectivity: Bind for 127.0.0.1:5000 failed: port is already allocated",
            125,
        )
    return CONTAINER_ID[:16] + "\n", "", 0


def _labels(flags: Flags) -> dict[str, str]:
    return dict(label.partition("=")[::2] for label in flags.all("--label"))


def _label_filters(flags: Flags, command: str) -> list[tuple[str, str, str]]:
    """``--filter label=K`` / ``label=K=V`` as (key, "=" or "", value)."""
    wanted = []
    for item in flags.all("--filter"):
        kind, _, label = item.partition("=")
        if kind != "label":
            raise Unexpected(f"{command} --filter {item}")
        wanted.append(label.partition("="))
    return wanted


def _matches(labels: dict[str, str], wanted: list[tuple[str, str, str]]) -> bool:
    return all(key in labels and (not eq or labels[key] == value) for key, eq, value in wanted)


def _volume_ls(args: list[str], state: dict[str, Any]) -> Answer:
    """`docker volume ls --format '{{json .Name}}' --filter label=K=V ...`."""
    flags = Flags(args, {"--format", "--filter"}, set())
    if flags.one("--format") != "{{json .Name}}" or flags.positionals:
        raise Unexpected("docker volume ls")
    wanted = _label_filters(flags, "docker volume ls")
    names = [name for name, labels in state["volumes"].items() if _matches(labels, wanted)]
    return "".join(json.dumps(name) + "\n" for name in names), "", 0


def _volume(verb: str, name: str, state: dict[str, Any]) -> Answer:
    if verb not in ("inspect", "rm"):
        raise Unexpected(f"docker volume {verb}")
    if name not in state["volumes"]:
        return err(f"Error response from daemon: get {name}: no such volume")
    if verb == "rm":
        del state["volumes"][name]
        if state.get("volume_root"):
            shutil.rmtree(Path(state["volume_root"]) / name, ignore_errors=True)
        return name + "\n", "", 0
    return out([{"Name": name, "Labels": state["volumes"][name]}])


def _volume_size(state: dict[str, Any], name: str) -> str:
    if not state.get("volume_root"):
        return "1.5MB"
    folder = Path(state["volume_root"]) / name
    return f"{sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())}B"


def _container_path(state: dict[str, Any], spec: str) -> Path | None:
    """``name:/path`` as the folder of the volume mounted there (None: not a container's)."""
    name, colon, inside = spec.partition(":")
    if not colon or "/" in name:
        return None
    container = state["containers"].get(name)
    if container is None or not state.get("volume_root"):
        raise Unexpected(f"docker container cp {spec}: no such container, or no volume_root")
    for target, volume in container.get("volume_mounts", {}).items():
        if inside == target or inside.startswith(f"{target}/"):
            return Path(state["volume_root"]) / volume / inside[len(target) :].lstrip("/")
    raise Unexpected(f"docker container cp {spec}: a path outside the container's volumes")


def _copy(source: str, target: str, state: dict[str, Any]) -> Answer:
    """`docker container cp` (modification times kept), as Docker resolves the paths: a
    source ending in ``/.`` copies its content; a folder into an existing folder goes under
    its own name; a missing source is the daemon's "Could not find the file"."""
    src = _container_path(state, source) or Path(source)
    dst = _container_path(state, target) or Path(target)
    contents = source.endswith("/.")
    if not src.exists():
        if _container_path(state, target) is not None:
            return err(f"lstat {source}: no such file or directory")
        return err(f"Error response from daemon: Could not find the file {source} in container")
    if src.is_dir():
        if dst.is_dir() and not contents:
            dst = dst / src.name
        shutil.copytree(src, dst, dirs_exist_ok=True)  # copy2: times kept
    else:
        shutil.copy2(src, dst / src.name if dst.is_dir() else dst)
    return "", "", 0


def _network(args: list[str], state: dict[str, Any]) -> Answer:
    networks = state["networks"]
    if args[:3] == ["inspect", "--format", "{{json .Labels}}"] and len(args) == 4:
        if args[3] not in networks:
            return err(f"Error response from daemon: network {args[3]} not found")
        return json.dumps(networks[args[3]]) + "\n", "", 0
    if args[:1] == ["create"]:
        flags = Flags(args[1:], {"--label"}, set())
        (name,) = flags.positionals
        if name in networks:
            return err(f"Error response from daemon: network with name {name} already exists")
        networks[name] = _labels(flags)
        return "f00d\n", "", 0
    if args[:1] == ["connect"] and len(args) == 3:
        if args[1] not in networks:
            return err(f"Error response from daemon: network {args[1]} not found")
        if args[2] not in state["containers"] and _node_cluster(state, args[2]) is None:
            return err(_no_such_container(args[2]))
        return "", "", 0
    if args[:1] == ["rm"] and len(args) == 2:
        if networks.pop(args[1], None) is None:
            return err(f"Error response from daemon: network {args[1]} not found")
        return args[1] + "\n", "", 0
    raise Unexpected("docker network")


def _exec(args: list[str], stdin: str | None, state: dict[str, Any]) -> Answer:
    """`docker exec` into a kind node: crictl, and reading and writing the node's files."""
    interactive = args[:1] == ["-i"]
    if interactive:
        args = args[1:]
    node, command = args[0], args[1:]
    files = state["node_files"].get(node)
    cluster = _node_cluster(state, node)
    if files is None or cluster is None:
        return err(_no_such_container(node))
    if not cluster["running"]:
        return err(f"Error response from daemon: container {node} is not running")
    if command[:4] == ["crictl", "inspecti", "-o", "json"] and len(command) == 5:
        image = command[4]
        if image not in cluster["images"]:
            return err(
                f'time="2026-01-01T00:00:00Z" level=fatal msg="no such image "{image}" present"'
            )
        return out({"status": {"id": "sha256:feed", "repoTags": [f"docker.io/library/{image}"]}})
    if command[:1] == ["cat"] and len(command) == 2 and not interactive:
        if command[1] not in files:
            return err(f"cat: {command[1]}: No such file or directory")
        return files[command[1]], "", 0
    if interactive and command[:3] == ["sh", "-c", WRITE_SCRIPT] and len(command) == 6:
        folder, path = command[4], command[5]
        if command[3] != "sh" or not path.startswith(folder + "/"):
            raise Unexpected("docker exec")
        files[path] = stdin or ""
        return "", "", 0
    if command[:4] == ["sh", "-c", WRITE_FILES_SCRIPT, "sh"] and not interactive:
        pairs = command[4:]
        if len(pairs) % 2 or not all(path.startswith("/") for path in pairs[::2]):
            raise Unexpected("docker exec")
        files.update(zip(pairs[::2], pairs[1::2]))
        return "", "", 0
    raise Unexpected("docker exec")
