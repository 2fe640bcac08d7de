"""A fake docker CLI at the runner seam: in-memory containers, volumes and images.

It answers the argv pallet-dev sends the way the real CLI does (JSON from
inspect, "No such container" on stderr with exit 1), records every call, and
fails loudly on argv it does not know. A `docker run` publishing a port starts a
real registry-like HTTP server there, so the backend's readiness wait is real.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pallet_dev.errors import CommandFailed
from pallet_dev.runner import CommandResult, Runner
from tests.support.http_servers import FakeRegistryServer


@dataclass
class FakeContainer:
    name: str
    image: str
    labels: dict[str, str]
    ports: list[tuple[str, int]]
    running: bool = True
    server: FakeRegistryServer | None = None


@dataclass
class FakeDockerState:
    images: set[str] = field(default_factory=lambda: {"registry:3.1.2"})
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    daemon: str = "up"  # up | down | denied
    pullable: set[str] = field(default_factory=set)
    fail_run: bool = False
    serve_registry: bool = True
    networks: dict[str, dict[str, str]] = field(default_factory=dict)


class FakeDockerRunner(Runner):
    def __init__(self, state: FakeDockerState | None = None, tools: Sequence[str] = ("docker",)):
        super().__init__()
        self.state = state or FakeDockerState()
        self.calls: list[list[str]] = []
        self.tools = set(tools)

    # tool discovery follows the fake's own list, not the machine's PATH
    def has(self, tool: str) -> bool:
        return tool in self.tools

    def which(self, tool: str) -> str:
        if tool not in self.tools:
            from pallet_dev.errors import ToolNotFound

            raise ToolNotFound(tool)
        return f"/fake/{tool}"

    def close(self) -> None:
        for container in self.state.containers.values():
            if container.server:
                container.server.stop()
                container.server = None

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        argv = [str(a) for a in argv]
        self.which(argv[0])
        self.calls.append(argv)
        out, err, code = self._dispatch(argv)
        result = CommandResult(tuple(argv), code, out, err, 0.0)
        if code != 0 and kwargs.get("check", True):
            raise CommandFailed(argv, code, out, err)
        return result

    def commands(self) -> list[str]:
        """The calls as "docker <sub> <sub2>" prefixes, for order assertions."""
        return [" ".join(call[:3]) for call in self.calls]

    def _dispatch(self, argv: list[str]) -> tuple[str, str, int]:
        state = self.state
        if state.daemon == "down":
            return (
                "",
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                "Is the docker daemon running?",
                1,
            )
        if state.daemon == "denied":
            return "", "permission denied while trying to connect to the Docker daemon socket", 1
        args = argv[1:]
        if args[:1] == ["version"]:
            return '"20.10.24"\n', "", 0
        if args[:2] == ["container", "inspect"]:
            container = state.containers.get(args[2])
            if container is None:
                return "[]\n", f"Error response from daemon: No such container: {args[2]}", 1
            return json.dumps([_inspect(container)]), "", 0
        if args[:2] == ["image", "inspect"]:
            image = args[-1]
            if image not in state.images:
                return "", f"Error response from daemon: No such image: {image}", 1
            return "sha256:feed\n", "", 0
        if args[:1] == ["pull"]:
            if args[1] in state.pullable:
                state.images.add(args[1])
                return f"Pulled {args[1]}\n", "", 0
            return "", f"Error response from daemon: pull access denied for {args[1]}", 1
        if args[:2] == ["volume", "inspect"]:
            if args[2] not in state.volumes:
                return "[]\n", f"Error response from daemon: get {args[2]}: no such volume", 1
            return json.dumps([{"Name": args[2]}]), "", 0
        if args[:2] == ["volume", "rm"]:
            if state.volumes.pop(args[2], None) is None:
                return "", f"Error response from daemon: get {args[2]}: no such volume", 1
            return args[2] + "\n", "", 0
        if args[:1] == ["run"]:
            return self._run_container(args)
        if args[:2] == ["container", "start"]:
            container = state.containers[args[2]]
            container.running = True
            self._serve(container)
            return args[2] + "\n", "", 0
        if args[:2] == ["container", "rm"]:
            container = state.containers.pop(args[-1], None)
            if container is None:
                return "", f"Error response from daemon: No such container: {args[-1]}", 1
            if container.server:
                container.server.stop()
            return args[-1] + "\n", "", 0
        if args[:2] == ["container", "ls"]:
            wanted = [a.split("=", 1)[1] for a in args if a.startswith("label=")]
            names = [
                c.name
                for c in state.containers.values()
                if all(
                    (w.split("=", 1)[0] in c.labels and "=" not in w)
                    or c.labels.get(w.split("=", 1)[0]) == w.split("=", 1)[-1]
                    for w in wanted
                )
            ]
            return "".join(json.dumps(n) + "\n" for n in names), "", 0
        if args[:2] == ["network", "inspect"]:
            if args[-1] not in state.networks:
                return "", f"Error response from daemon: network {args[-1]} not found", 1
            return json.dumps(state.networks[args[-1]]) + "\n", "", 0
        if args[:2] == ["network", "create"]:
            state.networks[args[-1]] = _labels(args)
            return "f00d\n", "", 0
        if args[:2] == ["network", "connect"]:
            return "", "", 0
        if args[:2] == ["network", "rm"]:
            state.networks.pop(args[-1], None)
            return args[-1] + "\n", "", 0
        if args[:2] == ["system", "df"]:
            return json.dumps([{"Name": n, "Size": "1.5MB"} for n in state.volumes]), "", 0
        raise AssertionError(f"fake docker: unexpected argv {argv}")

    def _run_container(self, args: list[str]) -> tuple[str, str, int]:
        name = args[args.index("--name") + 1]
        assert args[args.index("--pull") + 1] == "never", "run must never pull by itself"
        if args[-1] not in self.state.images:
            return "", f"docker: Error response from daemon: No such image: {args[-1]}", 125
        if name in self.state.containers:
            return (
                "",
                f'docker: Error response from daemon: Conflict. The container name "/{name}" '
                'is already in use by container "0123". You have to remove (or rename) that '
                "container to be able to reuse that name.",
                125,
            )
        ports = []
        for index, arg in enumerate(args):
            if arg == "--publish":
                host, port, _ = args[index + 1].rsplit(":", 2)
                ports.append((host, int(port)))
        for index, arg in enumerate(args):
            if arg == "--mount":
                fields = [part.split("=", 1) for part in args[index + 1].split(",")]
                source = next(value for key, value in fields if key == "src")
                labels = dict(value.split("=", 1) for key, value in fields if key == "volume-label")
                self.state.volumes.setdefault(source, labels)
        container = FakeContainer(name, args[-1], _labels(args), ports, running=True)
        self.state.containers[name] = container
        if self.state.fail_run:
            container.running = False
            return (
                "",
                "Error response from daemon: driver failed programming external "
                "connectivity: Bind for 127.0.0.1:5000 failed: port is already allocated",
                125,
            )
        self._serve(container)
        return "0123456789abcdef\n", "", 0

    def _serve(self, container: FakeContainer) -> None:
        if self.state.serve_registry and container.ports and container.server is None:
            container.server = FakeRegistryServer(container.ports[0][1]).start()


def _labels(args: list[str]) -> dict[str, str]:
    labels = {}
    for index, arg in enumerate(args):
        if arg == "--label":
            key, _, value = args[index + 1].partition("=")
            labels[key] = value
    return labels


def _inspect(container: FakeContainer) -> Mapping[str, Any]:
    return {
        "Id": "0123456789abcdef" * 4,
        "Name": "/" + container.name,
        "Image": "sha256:feed",
        "RestartCount": 0,
        "State": {"Status": "running" if container.running else "exited", "StartedAt": ""},
        "Config": {"Image": container.image, "Labels": container.labels, "Env": []},
        "HostConfig": {
            "PortBindings": {
                "5000/tcp": [{"HostIp": h, "HostPort": str(p)} for h, p in container.ports]
            }
        },
        "Mounts": [],
    }
