"""The user's kubeconfig, as kubectl edits it.

:class:`UserKubeconfig` edits the user's own kubeconfig (the files kubectl picks from
``$KUBECONFIG`` or ``~/.kube/config``) through `kubectl config set-*`, which add or
replace entries and never touch ``current-context``. :func:`entry_from_kubeconfig`
reads one context's cluster and credentials from a kubeconfig kind wrote;
:func:`context_credentials` those of any context (the cluster backend's, read with
`kubectl config view`; nothing is written).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet_dev.runner import Runner


@dataclass(frozen=True)
class KubeconfigEntry:
    """One kind context's cluster and credentials, as kind writes them."""

    name: str
    server: str
    certificate_authority_data: str
    client_certificate_data: str
    client_key_data: str


def entry_from_kubeconfig(text: str, name: str) -> KubeconfigEntry | None:
    """The cluster/user/context named ``name`` from a kubeconfig (YAML or JSON)."""
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None

    def named(section: str) -> dict[str, Any]:
        for item in data.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                value = item.get(section[:-1]) or {}
                return value if isinstance(value, dict) else {}
        return {}

    cluster, user, context = named("clusters"), named("users"), named("contexts")
    if not cluster or not user or not context:
        return None
    return KubeconfigEntry(
        name=name,
        server=str(cluster.get("server", "")),
        certificate_authority_data=str(cluster.get("certificate-authority-data", "")),
        client_certificate_data=str(user.get("client-certificate-data", "")),
        client_key_data=str(user.get("client-key-data", "")),
    )


@dataclass(frozen=True)
class ContextCredentials:
    """How a context of the user's kubeconfig reaches its API server (for `health`)."""

    server: str
    ca_pem: bytes | None  # None: the system's CAs
    insecure: bool  # insecure-skip-tls-verify
    cert_pem: bytes | None
    key_pem: bytes | None
    token: str | None
    plugin: str | None  # "exec" or "auth-provider": credentials only a plugin makes
    exec_plugin: ExecPlugin | None = None  # the `exec` entry, run to get them


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig user's `exec` credential plugin (EKS, GKE, AKS, OIDC helpers).

    Run as kubectl runs it (client.authentication.k8s.io): the command with its args and
    env, ``KUBERNETES_EXEC_INFO`` describing the call; it prints an ExecCredential.
    """

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str

    def argv(self) -> list[str]:
        return [self.command, *self.args]

    def environment(self) -> dict[str, str]:
        info = {
            "apiVersion": self.api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
        return {**dict(self.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}


def exec_credential(text: str) -> tuple[str | None, bytes | None, bytes | None]:
    """token, client certificate and key (PEM) from an ExecCredential's ``status``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None, None, None
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, dict):
        return None, None, None
    token = status.get("token")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    return (
        str(token) if token else None,
        str(cert).encode("utf-8") if cert else None,
        str(key).encode("utf-8") if key else None,
    )


def _exec_plugin(user: dict[str, Any]) -> ExecPlugin | None:
    spec = user.get("exec")
    if not isinstance(spec, dict) or not spec.get("command"):
        return None
    env = tuple(
        (str(item.get("name")), str(item.get("value", "")))
        for item in spec.get("env") or []
        if isinstance(item, dict) and item.get("name")
    )
    return ExecPlugin(
        command=str(spec["command"]),
        args=tuple(str(arg) for arg in spec.get("args") or []),
        env=env,
        api_version=str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
    )


def context_credentials(text: str, context: str) -> ContextCredentials | None:
    """The cluster and user context ``context`` points at, from `kubectl config view -o json`
    (``--minify --flatten``: certificate files are inlined); None when it is not there."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None

    def find(section: str, name: object) -> dict[str, Any]:
        for item in data.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                value = item.get(section[:-1]) or {}
                return value if isinstance(value, dict) else {}
        return {}

    entry = find("contexts", context)
    cluster = find("clusters", entry.get("cluster"))
    user = find("users", entry.get("user"))
    if not entry or not cluster.get("server"):
        return None

    def pem(value: object) -> bytes | None:
        return base64.b64decode(str(value)) if value else None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(user["tokenFile"])).expanduser().read_text(encoding="utf-8").strip()
    plugin = "exec" if user.get("exec") else "auth-provider" if user.get("auth-provider") else None
    return ContextCredentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=pem(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_pem=pem(user.get("client-certificate-data")),
        key_pem=pem(user.get("client-key-data")),
        token=str(token) if token else None,
        plugin=plugin,
        exec_plugin=_exec_plugin(user),
    )


class UserKubeconfig:
    """The user's kubeconfig, edited only with `kubectl config set-*` (current-context untouched).

    Certificates travel through files given with ``--embed-certs`` (never argv: argv
    is visible to every local user and is logged).
    """

    def __init__(self, runner: Runner, *, binary: str = "kubectl") -> None:
        self.runner = runner
        self.binary = binary

    def view_argv(self) -> list[str]:
        return [self.binary, "config", "view", "--raw", "-o", "json"]

    def set_cluster_argv(self, name: str, server: str, ca_file: str) -> list[str]:
        return [
            self.binary,
            "config",
            "set-cluster",
            name,
            f"--server={server}",
            f"--certificate-authority={ca_file}",
            "--embed-certs=true",
        ]

    def set_credentials_argv(self, name: str, cert_file: str, key_file: str) -> list[str]:
        return [
            self.binary,
            "config",
            "set-credentials",
            name,
            f"--client-certificate={cert_file}",
            f"--client-key={key_file}",
            "--embed-certs=true",
        ]

    def set_context_argv(self, name: str) -> list[str]:
        return [self.binary, "config", "set-context", name, f"--cluster={name}", f"--user={name}"]

    def entry(self, name: str, *, timeout: float = 20.0) -> KubeconfigEntry | None:
        out = self.runner.run(self.view_argv(), timeout=timeout, step="kubectl config view").stdout
        return entry_from_kubeconfig(out, name)

    def set_entry(
        self, name: str, server: str, files: tuple[str, str, str], *, timeout: float = 20.0
    ) -> None:
        ca_file, cert_file, key_file = files
        for argv in (
            self.set_cluster_argv(name, server, ca_file),
            self.set_credentials_argv(name, cert_file, key_file),
            self.set_context_argv(name),
        ):
            self.runner.run(argv, timeout=timeout, step="kubectl config set")

    @staticmethod
    def cert_files(certs_dir: Path) -> tuple[Path, Path, Path]:
        """Where :meth:`publish` keeps the certificates while `kubectl config` reads them."""
        return (certs_dir / "ca.crt", certs_dir / "client.crt", certs_dir / "client.key")

    def publish(
        self, name: str, ours: KubeconfigEntry, certs_dir: Path, *, timeout: float = 20.0
    ) -> bool:
        """Make context ``name`` equal ``ours`` in the user's kubeconfig; never switch to it.

        Nothing runs when the user's entry already matches (False). Otherwise the
        certificates go to 0600 files in ``certs_dir`` (0700) only while the three
        `kubectl config set-*` calls read them, and are removed again whatever happens.
        ``timeout`` bounds each call.
        """
        if self.entry(name, timeout=timeout) == ours:
            return False
        files = self.cert_files(certs_dir)
        data = (
            ours.certificate_authority_data,
            ours.client_certificate_data,
            ours.client_key_data,
        )
        try:
            certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(certs_dir, 0o700)
            for path, encoded in zip(files, data):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(base64.b64decode(encoded))
            self.set_entry(
                name, ours.server, (str(files[0]), str(files[1]), str(files[2])), timeout=timeout
            )
        finally:
            for path in files:
                path.unlink(missing_ok=True)
            try:
                certs_dir.rmdir()
            except OSError:
                pass
        return True
