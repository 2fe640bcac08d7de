"""The fake tools at the runner seam: same world as the PATH fakes, in memory, fast.

Every call is recorded; argv the fakes do not know raises AssertionError (loudly,
past the backend's error handling). A real registry-like HTTP server answers on every
port the world serves (``fake_tool.served_ports``): a cluster's host port while the
registry release is deployed, as the NodePort behind kind's port mapping would, and
the port a running container publishes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pallet_dev.errors import CommandFailed, CommandTimeout, ToolNotFound
from pallet_dev.runner import CommandResult, Runner
from tests.fakes import fake_tool
from tests.support.http_servers import FakeRegistryServer

TOOLS = ("docker", "kind", "helm", "kubectl")


def command_words(argv: Sequence[str]) -> str:
    """A call as its tool and up to two subcommand words (kubectl's global flags skipped)."""
    words = [argv[0].rsplit("/", 1)[-1]]
    rest = list(argv[1:])
    if words[0] == "kubectl":
        while rest[:1] and rest[0] in ("--kubeconfig", "--context"):
            rest = rest[2:]
    for arg in rest:
        if arg.startswith("-") or len(words) == 3:
            break
        words.append(arg)
    return " ".join(words)


class RegistryServers:
    """One registry-like HTTP server on each port the fake world serves, kept in step."""

    def __init__(self) -> None:
        self.servers: dict[int, FakeRegistryServer] = {}
        # steps run tools from several threads (concurrent steps, the claim nudge)
        self.lock = threading.Lock()

    def sync(self, wanted: set[int]) -> None:
        with self.lock:
            self._sync(wanted)

    def _sync(self, wanted: set[int]) -> None:
        for port in set(self.servers) - wanted:
            self.servers.pop(port).stop()
        for port in wanted - set(self.servers):
            server = FakeRegistryServer(port)
            # a short poll interval: stopping it (every test's teardown) takes that long
            server.thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True
            )
            self.servers[port] = server.start()

    def close(self) -> None:
        self.sync(set())


class FakeToolsRunner(Runner):
    def __init__(self, state: dict[str, Any] | None = None, tools: Sequence[str] = TOOLS):
        super().__init__()
        self.state = state if state is not None else fake_tool.new_state()
        self.tools = set(tools)
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []
        self.envs: list[dict[str, str] | None] = []  # each call's extra environment
        self.timeouts: list[float] = []
        self.registries = RegistryServers()
        self.serve_registry = True

    def has(self, tool: str) -> bool:
        return tool in self.tools

    def which(self, tool: str) -> str:
        name = tool.rsplit("/", 1)[-1]
        if name not in self.tools:
            raise ToolNotFound(name)
        return f"/fake/{name}"

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        argv = [str(a) for a in argv]
        self.which(argv[0])
        tool = argv[0].rsplit("/", 1)[-1]
        self.calls.append(argv)
        self.inputs.append(kwargs.get("input"))
        self.envs.append(dict(kwargs["env"]) if kwargs.get("env") else None)
        timeout = float(kwargs.get("timeout", 60.0))
        assert timeout > 0, f"non-positive timeout for {argv}"
        self.timeouts.append(timeout)
        failure = fake_tool.injected_failure(tool, argv[1:], self.state)
        if failure is not None and failure.get("timeout"):
            raise CommandTimeout(argv, timeout)
        if failure is not None:
            out, err, code = (
                "",
                failure.get("stderr", "injected failure") + "\n",
                failure.get("code", 1),
            )
        else:
            try:
                out, err, code = fake_tool.handle(tool, argv[1:], kwargs.get("input"), self.state)
            except fake_tool.Unexpected as exc:
                raise AssertionError(f"fake {tool}: unexpected argv {argv} ({exc})") from None
        self.sync_servers()
        result = CommandResult(tuple(argv), int(code), out, err, 0.0)
        if code != 0 and kwargs.get("check", True):
            raise CommandFailed(argv, int(code), out, err)
        return result

    def sync_servers(self) -> None:
        """Start or stop registry servers after the world changed (each call does this)."""
        self.registries.sync(fake_tool.served_ports(self.state) if self.serve_registry else set())

    @property
    def servers(self) -> dict[int, FakeRegistryServer]:
        return self.registries.servers

    def close(self) -> None:
        self.registries.close()

    # assertions helpers
    def commands(self) -> list[str]:
        """Each call as its tool and subcommand words, global flags left out."""
        return [command_words(call) for call in self.calls]

    def reset_calls(self) -> None:
        self.calls.clear()
        self.inputs.clear()
        self.envs.clear()
        self.timeouts.clear()
