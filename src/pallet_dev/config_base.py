"""What every part of the configuration's validation shares: the strict model base, the
URL and value rules, and how a value or a path is shown in a message."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def probe_url(value: str) -> str:
    """An http(s) URL `health` can always probe: ASCII, a valid host and port."""
    from urllib.parse import urlsplit

    fix = "must be an http:// or https:// URL such as http://localhost:8080/healthz"
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value) or not value.isascii():
        raise ValueError(f"{fix} (ASCII, no spaces; percent-encode other characters)")
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{fix} ({exc})") from None
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{fix} (no host)")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{fix} (bad IPv6 address {host!r:.60})") from None
    elif any(not label for label in host.split(".")[:-1]) or len(host) > 253:
        raise ValueError(f"{fix} (bad host name {host!r:.60})")
    if port == 0:
        raise ValueError(f"{fix} (port 0)")
    return value


def usable_path(make: Callable[[], Path], probe: Callable[[Path], bool]) -> Path | str:
    """The resolved path, or why the text cannot be one (``~user`` of no user, a NUL byte,
    a name longer than the file system takes): said in the message, never a traceback."""
    try:
        path = make().resolve()
        probe(path)
    except RuntimeError as exc:  # expanduser: no such user, or no home folder
        return str(exc).rstrip(".").lower()
    except ValueError as exc:  # a NUL byte
        return str(exc).rstrip(".")
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return path


def shown(path: Path) -> str:
    """A resolved path for a message: a long one is cut (messages stay short)."""
    text = str(path)
    return text if len(text) <= 200 else text[:100] + "..." + text[-97:]


def short_value(value: object, limit: int = 60) -> str:
    """A value quoted for a message: escaped and at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
