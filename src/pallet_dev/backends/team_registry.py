"""The team's registry of the cluster backend: its address, and the user's Docker login.

``cluster.registry`` is ``[scheme://]host[:port][/folder]``; agents go to
``<host>/<folder>/<user>/<agent>``. Without a scheme the registry's API is HTTPS, except on
a loopback host (as Docker itself treats it). Credentials come from the ``auths`` of the
user's Docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``);
credential helpers (``credsStore``, ``credHelpers``) are not run.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pallet_dev.config_sources import is_loopback_address


@dataclass(frozen=True)
class TeamRegistry:
    scheme: str  # http | https
    host: str  # host[:port], as image references name it
    folder: str  # "" or a/b

    @classmethod
    def parse(cls, value: str) -> TeamRegistry:
        scheme = ""
        if "://" in value:
            scheme, value = value.split("://", 1)
        host, _, folder = value.partition("/")
        if not scheme:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            loopback = name == "localhost" or (
                name.replace(".", "").isdigit() and is_loopback_address(name)
            )
            scheme = "http" if loopback else "https"
        return cls(scheme, host, folder.strip("/"))

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def address(self) -> str:
        """As image references and ``PALLET_REGISTRY`` name it (no scheme)."""
        return f"{self.host}/{self.folder}" if self.folder else self.host

    def user_folder(self, user: str) -> str:
        return f"{self.folder}/{user}" if self.folder else user


def docker_config_path() -> Path:
    folder = os.environ.get("DOCKER_CONFIG")
    return Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"


@dataclass(frozen=True)
class DockerLogin:
    """The user's Docker login for one registry host, or why there is none."""

    auth: str | None  # base64 of user:password, as `docker login` stores it
    missing: str | None = None  # a sentence: why there is no usable login

    def dockerconfigjson(self, host: str) -> str:
        assert self.auth is not None
        return json.dumps({"auths": {host: {"auth": self.auth}}}, sort_keys=True)

    @property
    def basic(self) -> tuple[str, str] | None:
        if self.auth is None:
            return None
        user, _, password = base64.b64decode(self.auth).decode("utf-8").partition(":")
        return user, password


def docker_login(host: str, path: Path | None = None) -> DockerLogin:
    path = path or docker_config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DockerLogin(None, f"{path} does not exist (no `docker login {host}` yet)")
    except (OSError, ValueError) as exc:
        return DockerLogin(None, f"cannot read {path} ({exc})")
    auths = data.get("auths") if isinstance(data, dict) else None
    for key, entry in (auths or {}).items():
        bare = str(key).split("://", 1)[-1].split("/", 1)[0]
        if bare != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            return DockerLogin(str(entry["auth"]))
        if entry.get("username") and entry.get("password"):
            pair = f"{entry['username']}:{entry['password']}".encode()
            return DockerLogin(base64.b64encode(pair).decode("ascii"))
    helpers = isinstance(data, dict) and (data.get("credsStore") or data.get("credHelpers"))
    if helpers:
        return DockerLogin(
            None,
            f"{path} keeps the login of {host} in a credential helper, which pallet-dev does "
            "not read",
        )
    return DockerLogin(None, f"{path} has no login for {host} (run `docker login {host}`)")


def try_push(registry: TeamRegistry, repository: str, login: DockerLogin, timeout: float) -> str:
    """Start (and cancel) a blob upload to ``repository`` as the user, as `docker push` does:
    a sentence of what went wrong, or "" when the registry accepts the push."""
    from pallet_dev.probe import http_get, registry_authorization

    url = f"{registry.url}/v2/{repository}/blobs/uploads/"
    headers: dict[str, str] = {}
    status, answer, _ = http_get(url, timeout, method="POST", headers=headers)
    if status == 401:
        scope = f"repository:{repository}:push,pull"
        authorization = registry_authorization(
            answer.get("www-authenticate", ""), scope, login.auth, timeout
        )
        if isinstance(authorization, str):
            return authorization + _without(login)
        headers.update(authorization)
        status, answer, _ = http_get(url, timeout, method="POST", headers=headers)
    if status == 202:
        location = answer.get("location", "")
        if location:
            target = location if "://" in location else f"{registry.url}{location}"
            try:
                http_get(target, timeout, method="DELETE", headers=headers)
            except OSError:
                pass  # an abandoned upload session expires by itself
        return ""
    if status in (401, 403):
        return f"it refused a push to {repository} ({status})" + _without(login)
    return f"it answered {status} to the start of a push to {repository}"


def _without(login: DockerLogin) -> str:
    return f" ({login.missing})" if login.missing else " with your Docker login"
