"""Is a host port free, and if not, who holds it."""

from __future__ import annotations

import errno
import socket
import sys

from pallet_dev.errors import CommandFailed, CommandTimeout, PortInUse, ToolNotFound
from pallet_dev.runner import Runner


def port_is_free(bind_address: str, port: int) -> bool:
    """True when ``bind_address:port`` can be bound now (what `docker run -p` needs)."""
    family = socket.AF_INET6 if ":" in bind_address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    # also check the wildcard holder: something on 0.0.0.0:port blocks 127.0.0.1:port too
    if bind_address not in ("0.0.0.0", "::"):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((bind_address, port)) == 0:
                return False
    return True


def port_holder(port: int, runner: Runner) -> str | None:
    """Name and pid of the process listening on ``port``, where the OS tells."""
    if runner.has("lsof"):
        try:
            out = runner.run(
                ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"],
                timeout=5,
                check=False,
                step="port holder",
            ).stdout
        except (CommandFailed, CommandTimeout, ToolNotFound):
            out = ""
        pid = command = None
        for line in out.splitlines():
            if line.startswith("p") and pid is None:
                pid = line[1:]
            elif line.startswith("c") and command is None:
                command = line[1:]
        if pid:
            return f"{command or 'unknown'} (pid {pid})"
    if sys.platform.startswith("linux") and runner.has("ss"):
        try:
            out = runner.run(
                ["ss", "-Htlnp", f"sport = :{port}"], timeout=5, check=False, step="port holder"
            ).stdout
        except (CommandFailed, CommandTimeout, ToolNotFound):
            return None
        # users:(("docker-proxy",pid=1234,fd=4))
        marker = 'users:(("'
        for line in out.splitlines():
            if marker in line:
                rest = line.split(marker, 1)[1]
                name = rest.split('"', 1)[0]
                pid = rest.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in rest else "?"
                return f"{name} (pid {pid})"
    return None


def port_conflict_hint(port: int, holder: str | None) -> str:
    hint = f"Free the port or choose another one: `pallet-dev up --port {port + 1}`."
    if holder and "docker-proxy" in holder:
        hint += f" A Docker container publishes it: `docker ps --filter publish={port}`."
    if sys.platform == "darwin" and port in (5000, 7000):
        hint += (
            " On macOS port 5000 is used by AirPlay Receiver: turn it off in System Settings >"
            " General > AirDrop & Handoff, or use another port."
        )
    return hint


def ensure_port_free(bind_address: str, port: int, runner: Runner) -> None:
    """Raise PortInUse, naming the holder where the OS tells, unless the port is free."""
    if port_is_free(bind_address, port):
        return
    holder = port_holder(port, runner)
    owner = f" by {holder}" if holder else ""
    raise PortInUse(
        f"Port {port} on {bind_address} is already in use{owner}.",
        hint=port_conflict_hint(port, holder),
    )
