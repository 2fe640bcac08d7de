"""Pull-through caches ("mirrors"): the facts both backends share.

One CNCF distribution instance per upstream runs in proxy mode (distribution serves one
remote per instance and refuses pushes in that mode). Names, the registry's environment
for proxy mode, the credentials read from the user's variables at `up` time, and the
Docker daemon's ``registry-mirrors`` advice live here; the Docker backend's containers
are in backends/docker_mirrors.py, the kind backend's in the chart (templates/mirrors.yaml)
and backends/registry_wiring.py (containerd's hosts.toml). Standard library only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pallet_dev.errors import ConfigError

if TYPE_CHECKING:
    from pallet_dev.settings import MirrorSettings

# `mirrors:` absent from the config: these four, anonymous. `mirrors: []` turns them off.
DEFAULT_MIRRORS: tuple[tuple[str, str], ...] = (
    ("docker.io", "https://registry-1.docker.io"),
    ("ghcr.io", "https://ghcr.io"),
    ("quay.io", "https://quay.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
)
DOCKER_HUB = "docker.io"
# Where a mirror's CA certificate is mounted in its container (both backends).
CA_MOUNT_DIR = "/etc/pallet-dev/upstream-ca"
CA_FILE_NAME = "ca.crt"
# distribution 3.1.2 in proxy mode with a static username/password (or none) asks the
# remote's /v2/ for its auth challenge while starting, and panics when the remote cannot be
# reached: a cache would never start offline. With `proxy.exec` it asks only when it
# pulls. Without credentials the helper is a path that does not exist: the registry logs
# that it could not run it and goes on anonymously.
NO_CREDENTIALS_HELPER = "/pallet-dev/no-credentials"
USERNAME_VAR = "REGISTRY_PROXY_USERNAME"
PASSWORD_VAR = "REGISTRY_PROXY_PASSWORD"


def mirror_slug(upstream: str) -> str:
    """``registry.k8s.io`` → ``registry-k8s-io``: a DNS label and container name part."""
    return re.sub(r"[^a-z0-9]+", "-", upstream.lower()).strip("-")


def container_name(env_name: str, upstream: str) -> str:
    return f"{env_name}-mirror-{mirror_slug(upstream)}"


def volume_name(env_name: str, upstream: str) -> str:
    return f"{container_name(env_name, upstream)}-data"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def credentials(
    mirror: MirrorSettings, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The upstream's credentials from the variables the config names (read at `up` time)."""
    if mirror.username_env is None or mirror.password_env is None:
        return None
    environ = os.environ if environ is None else environ
    missing = [name for name in (mirror.username_env, mirror.password_env) if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"Mirror '{mirror.upstream}' takes its credentials from the environment variable"
            f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)}, which "
            f"{'are' if len(missing) > 1 else 'is'} not set.",
            hint=f"Export {' and '.join(missing)} before `pallet-dev up`, or remove "
            "username_env/password_env from the mirror.",
        )
    return Credentials(environ[mirror.username_env], environ[mirror.password_env])


def proxy_env(mirror: MirrorSettings, *, with_credentials: bool) -> dict[str, str]:
    """The registry's environment for proxy mode (the credentials themselves excluded)."""
    env = {
        "OTEL_TRACES_EXPORTER": "none",
        "REGISTRY_PROXY_REMOTEURL": mirror.remote_url,
        # a cache is never written to by clients; deletes come only from its TTL expiry
        "REGISTRY_HTTP_DRAINTIMEOUT": "5s",
    }
    if not with_credentials:
        env["REGISTRY_PROXY_EXEC_COMMAND"] = NO_CREDENTIALS_HELPER
    if mirror.ca_file:
        # Go reads this file and still the system's certificate folders
        env["SSL_CERT_FILE"] = f"{CA_MOUNT_DIR}/{CA_FILE_NAME}"
    return env


def daemon_json_lines(endpoint: str) -> str:
    """The daemon.json entry that sends the Docker daemon's docker.io pulls to the cache."""
    return json.dumps({"registry-mirrors": [endpoint]})


def daemon_mirror_advice(configured: list[str], endpoint: str) -> str | None:
    """One line when the daemon does not use the docker.io cache (None when it does)."""
    wanted = endpoint.rstrip("/")
    if any(item.rstrip("/") == wanted for item in configured):
        return None
    return (
        f"The Docker daemon does not use the docker.io cache; to use it add "
        f"{daemon_json_lines(wanted)} to daemon.json and restart Docker."
    )
