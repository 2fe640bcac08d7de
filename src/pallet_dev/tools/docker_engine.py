"""Reads from the Docker Engine API on its local socket, where the docker CLI would go.

A `docker container inspect` or `ls` costs 15-25 ms, nearly all of it the CLI starting;
the same answer from the daemon's socket takes about 1 ms. `up` makes such reads while an
agent's image builds, on the same cores, and `health` and `status` make little else. So
reads go to the socket when the CLI's daemon is a local one, and to the CLI otherwise:
only reads, only what the CLI prints as the API's own JSON, and any trouble on the socket
(not there, refused, a timeout, an answer that is not JSON) sends the caller back to the
CLI, whose typed errors are the ones users see. Writes (run, rm, build, push) stay with
the CLI. ``PALLET_DEV_DOCKER_API=0`` turns the socket off.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pallet_dev.probe import HttpError, NoAnswer, read_answer

DEFAULT_SOCKET = "/var/run/docker.sock"
SWITCH = "PALLET_DEV_DOCKER_API"


def local_socket(environ: Mapping[str, str]) -> str | None:
    """The unix socket of the daemon the docker CLI would use, as the CLI chooses it:
    DOCKER_HOST, else the context DOCKER_CONTEXT names, else config.json's currentContext,
    else the default socket. None when that daemon is not on a unix socket (tcp, ssh,
    a named pipe) or the context cannot be read: the CLI is used then."""
    if environ.get(SWITCH, "").strip().lower() in ("0", "false", "no", "off"):
        return None
    host = environ.get("DOCKER_HOST", "").strip()
    if host:
        return _unix_path(host)
    config_dir = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    name = environ.get("DOCKER_CONTEXT", "").strip()
    try:
        if not name:
            config = _json_file(config_dir / "config.json")
            name = str(config.get("currentContext") or "") if config is not None else ""
        if name in ("", "default"):
            return DEFAULT_SOCKET
        from hashlib import sha256

        folder = sha256(name.encode()).hexdigest()  # the CLI's folder name for a context
        meta: Any = _json_file(config_dir / "contexts" / "meta" / folder / "meta.json")
        endpoint = meta["Endpoints"]["docker"]["Host"] if meta is not None else ""
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _unix_path(str(endpoint))


def _unix_path(host: str) -> str | None:
    return host[len("unix://") :] or None if host.startswith("unix://") else None


def _json_file(path: Path) -> dict[str, object] | None:
    """The file's JSON object; None when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def get(socket_path: str, path: str, timeout: float) -> tuple[int, bytes]:
    """GET ``path`` on the Engine API: the status and the body. HttpError (an OSError)
    when the socket cannot be reached or does not answer in ``timeout`` (per step)."""
    where = f"unix://{socket_path}{path}"
    request = f"GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(request.encode("ascii"))
            with sock.makefile("rb") as reader:
                status, _, body = read_answer(reader, "GET")
    except TimeoutError:
        raise HttpError(where, f"timed out after {timeout:g} s") from None
    except (NoAnswer, ConnectionResetError, BrokenPipeError):
        raise HttpError(where, "connection closed without a response") from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise HttpError(where, f"cannot connect ({exc})") from None
    return status, body
