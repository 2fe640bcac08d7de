"""Where configuration comes from: the file's name, how it is found, the variables.

Standard library only: the settings cache (settings.py) and the commands run without
Typer (bypass.py) need these without importing pydantic or yaml.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

CONFIG_FILENAME = "pallet-dev.yaml"

# Environment variables, each mapped to a field path. Other PALLET_DEV_* names
# (PALLET_DEV_HOME, test switches) are not configuration and are left alone.
ENV_FIELDS: dict[str, tuple[str, ...]] = {
    "PALLET_DEV_NAME": ("name",),
    "PALLET_DEV_BACKEND": ("backend",),
    "PALLET_DEV_REGISTRY_IMAGE": ("registry", "image"),
    "PALLET_DEV_REGISTRY_PORT": ("registry", "port"),
    "PALLET_DEV_REGISTRY_BIND_ADDRESS": ("registry", "bind_address"),
    "PALLET_DEV_KIND_NODE_IMAGE": ("kind", "node_image"),
}


# the documented truthy spellings of a boolean variable (PALLET_DEV_DEBUG); "0", "false",
# "no", "off" and an empty value are false
TRUTHY = ("1", "true", "yes", "on")


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUTHY


# upper bounds for the seconds a flag may give (`up --timeout`, `health --timeout`, ...)
MAX_WAIT_SECONDS = 24 * 3600.0
MAX_PROBE_SECONDS = 60.0
# the defaults of `up --timeout` (and `dev --timeout`, its first `up`) and `health --timeout`
UP_TIMEOUT_SECONDS = 300.0
HEALTH_PROBE_SECONDS = 1.0


def checked_seconds(value: float, flag: str, maximum: float = MAX_WAIT_SECONDS) -> float:
    """``value`` when it is a finite number of seconds in (0, maximum]; else UsageError (2)."""
    import math

    from pallet_dev.errors import UsageError

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{flag} must be a number of seconds, not {value!r:.40}.")
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise UsageError(
            f"{flag} {value:g} is out of range: give more than 0 and at most {maximum:g} seconds.",
            hint=f"For example `{flag} 30`.",
        )
    return float(value)


def find_config_file(start: Path) -> Path | None:
    """The first ``pallet-dev.yaml`` in ``start`` or one of its parents."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


# Names and addresses derived from the settings (settings.Settings), in one place.
def container_name_for(env_name: str) -> str:
    return f"{env_name}-registry"


def volume_name_for(env_name: str) -> str:
    return f"{env_name}-registry-data"


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:5000``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def registry_url_for(bind_address: str, port: int) -> str:
    host = "127.0.0.1" if bind_address in ("0.0.0.0", "::") else bind_address
    return f"http://{host_port(host, port)}"


def is_loopback_address(bind_address: str) -> bool:
    return ipaddress.ip_address(bind_address).is_loopback


def registry_push_host(bind_address: str, port: int) -> str:
    """Where tools on this machine push: ``localhost:<port>`` unless bound elsewhere."""
    if is_loopback_address(bind_address) or bind_address in ("0.0.0.0", "::"):
        return f"localhost:{port}"
    return host_port(bind_address, port)
