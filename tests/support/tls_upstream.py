"""An "upstream" registry of the tests' own: the pinned distribution image serving TLS with a
certificate from a test CA made here with openssl, for the pull-through cache tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.support.real_docker import TEST_IMAGE, docker

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = b"{}"


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def make_test_ca(folder: Path, names: list[str], ips: tuple[str, ...] = ()) -> Path:
    """A CA (made once per folder) and a server certificate for ``names`` (DNS names),
    127.0.0.1 and ``ips``; returns the CA certificate's path. Files: ca.crt, tls.crt,
    tls.key."""
    if shutil.which("openssl") is None:
        skip_or_fail("openssl makes the test CA of the TLS upstream registry")
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "ca.crt").is_file():
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=pallet-dev test CA",
            cwd=folder,
        )  # fmt: skip
    addresses = ("127.0.0.1", *ips)
    san = ",".join([*(f"DNS:{name}" for name in names), *(f"IP:{ip}" for ip in addresses)])
    (folder / "ext.cnf").write_text(f"subjectAltName={san}\n", encoding="utf-8")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
        "-subj", f"/CN={names[0]}", cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "tls.crt", "-extfile", "ext.cnf",
        cwd=folder,
    )  # fmt: skip
    (folder / "tls.key").chmod(0o644)  # read by the registry inside its container
    return folder / "ca.crt"


@dataclass
class TlsUpstream:
    """A distribution container serving https on 127.0.0.1:<port> and ``name``:5000."""

    name: str
    port: int
    ca_file: Path
    ip: str = ""  # its fixed address on the network it was started on

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = docker("container", "logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self) -> None:
        docker("container", "stop", "--time", "2", self.name)

    def remove(self) -> None:
        docker("container", "rm", "--force", "--volumes", self.name, check=False)


def free_address(network: str) -> str:
    """An IPv4 address of ``network`` no container holds, from the top of its subnet
    (Docker hands out addresses from the bottom), for a container started with --ip."""
    import ipaddress
    import random

    data = json.loads(docker("network", "inspect", network).stdout)[0]
    subnet = next(
        ipaddress.ip_network(item["Subnet"])
        for item in data["IPAM"]["Config"]
        if ipaddress.ip_network(item["Subnet"]).version == 4
    )
    used = {
        str(ipaddress.ip_interface(item["IPv4Address"]).ip)
        for item in (data.get("Containers") or {}).values()
        if item.get("IPv4Address")
    }
    top = int(subnet.broadcast_address) - 2
    for _ in range(100):
        candidate = str(ipaddress.ip_address(top - random.randrange(200)))
        if candidate not in used:
            return candidate
    raise AssertionError(f"no free address found in {subnet}")


def start_tls_upstream(name: str, certs: Path, network: str | None = None) -> TlsUpstream:
    """With ``network``: at a fixed address on it (``upstream.ip``), which its certificate
    names, for clients that cannot resolve container names (pods)."""
    ip = free_address(network) if network else ""
    ca_file = make_test_ca(certs, [name], (ip,) if ip else ())
    argv = [
        "run", "--detach", "--name", name, "--publish", "127.0.0.1::5000",
        "--mount", f"type=bind,src={certs},dst=/certs,readonly",
        "--env", "OTEL_TRACES_EXPORTER=none",
        "--env", "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/tls.crt",
        "--env", "REGISTRY_HTTP_TLS_KEY=/certs/tls.key",
        "--label", "dev.pallet.test=tls-upstream",
    ]  # fmt: skip
    if network:
        argv += ["--network", network, "--ip", ip]
    try:
        docker(*argv, TEST_IMAGE)
    except subprocess.CalledProcessError as exc:
        docker("rm", "--force", "--volumes", name, check=False)
        if "user configured subnets" in (exc.stderr or ""):
            raise AssertionError(
                f"Docker refuses a fixed address on the {network} network (its IPv4 subnet "
                "was not given when it was made): with no kind cluster running, run `bash "
                "tests/e2e/kind-node/ensure-kind-network.sh` (.ci/run does)."
            ) from exc
        raise
    upstream = TlsUpstream(name, _host_port(name), ca_file, ip)
    wait_answering(f"{upstream.url}/v2/", verify=str(ca_file))
    return upstream


def tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _host_port(name: str) -> int:
    out = docker("container", "inspect", name).stdout
    bindings = json.loads(out)[0]["NetworkSettings"]["Ports"]["5000/tcp"]
    return int(bindings[0]["HostPort"])


def copy_image(source: str, target: str, repository: str, tag: str, verify: str) -> None:
    """Copy one single-platform image from a plain-HTTP registry to a TLS one (blobs, then
    the manifest), by the registry API."""
    import httpx

    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json"
    )
    with (
        httpx.Client(base_url=source, timeout=60) as src,
        httpx.Client(base_url=target, verify=tls_context(verify), timeout=60) as dst,
    ):
        got = src.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
        assert got.status_code == 200, got.text
        manifest = got.json()
        for item in [manifest["config"], *manifest["layers"]]:
            blob = src.get(f"/v2/{repository}/blobs/{item['digest']}")
            assert blob.status_code == 200, blob.text[:200]
            started = dst.post(f"/v2/{repository}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            joiner = "&" if "?" in location else "?"
            done = dst.put(f"{location}{joiner}digest={item['digest']}", content=blob.content)
            assert done.status_code == 201, done.text
        put = dst.put(
            f"/v2/{repository}/manifests/{tag}",
            content=got.content,
            headers={"Content-Type": got.headers["content-type"]},
        )
        assert put.status_code == 201, put.text


def wait_answering(url: str, *, verify: str, seconds: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, verify=tls_context(verify), timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {seconds:g} s: {last}")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_artifact(base_url: str, repository: str, tag: str, payload: bytes, verify: str) -> str:
    """A one-layer OCI artifact through the registry API (monolithic uploads); returns the
    manifest's digest."""
    import httpx

    with httpx.Client(base_url=base_url, verify=tls_context(verify), timeout=30) as client:
        for blob in (EMPTY_CONFIG, payload):
            started = client.post(f"/v2/{repository}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            joiner = "&" if "?" in location else "?"
            done = client.put(f"{location}{joiner}digest={digest(blob)}", content=blob)
            assert done.status_code == 201, done.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": digest(EMPTY_CONFIG),
                    "size": len(EMPTY_CONFIG),
                },
                "layers": [
                    {
                        "mediaType": "application/octet-stream",
                        "digest": digest(payload),
                        "size": len(payload),
                    }
                ],
            }
        ).encode()
        put = client.put(
            f"/v2/{repository}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        return digest(manifest)
