"""The chart's rendered registry config, run by the real registry image under the pod's
security settings (uid 1000, read-only root, no capabilities) in Docker.

Proves what a render cannot: the registry accepts the config.yml, `GET /` (the probes)
answers 200 even with auth on, /v2/ answers with the API version header, a host folder
of mode 0777 (the hostPath design) is writable by the pod's uid, delete is enabled,
SIGTERM drains, and the `helm test` pod's script passes against it (and fails when its
expectation is wrong).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pallet_dev.chart.constants import REGISTRY_GID, REGISTRY_UID
from tests.chart.conftest import Helm, find_helm, one
from tests.conftest import require_tool
from tests.support.real_docker import TEST_IMAGE, docker, require_docker

pytestmark = [pytest.mark.docker, pytest.mark.helm]

USER, PASSWORD = "pallet", "pallet-secret"
BCRYPT_LINE = "pallet:$2b$10$7Ml9oCtJcH3ez32Ike0OXephfBwWpHX0AG3Xy3GGOLAWy/eIBz4b."
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Response:
    status: int
    headers: dict[str, str]


def http(url: str, method: str = "GET", data: bytes | None = None, auth: bool = False) -> Response:
    req = urllib.request.Request(url, method=method, data=data)
    # not urllib's default form type: Go's FormValue would read the body as a form
    req.add_header("Content-Type", "application/octet-stream")
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with NO_PROXY.open(req, timeout=10) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()})


@dataclass
class RunningRegistry:
    container: str
    url: str
    data_dir: Path
    test_script: str
    auth: bool


def rendered(helm: Helm, auth: bool) -> list[dict[str, Any]]:
    sets = ["auth.htpasswd.enabled=true", "tests.credentials.existingSecret=creds"] if auth else []
    strings = [f"auth.htpasswd.entries[0]={BCRYPT_LINE}"] if auth else []
    return helm.render(sets=sets, set_strings=strings)


@pytest.fixture(params=[False, True], ids=["open", "htpasswd"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningRegistry]:
    require_docker()
    auth: bool = request.param
    objects = rendered(find_helm("helm4"), auth)
    container_spec = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]

    config_dir, auth_dir, data_dir = tmp_path / "config", tmp_path / "auth", tmp_path / "data"
    for folder in (config_dir, auth_dir, data_dir):
        folder.mkdir()
    data_dir.chmod(0o777)  # what pallet-dev does for the hostPath folder
    (config_dir / "config.yml").write_text(one(objects, "ConfigMap")["data"]["config.yml"])
    argv = [
        "run", "--detach",
        "--name", f"pallet-chart-test-{secrets.token_hex(4)}",
        "--user", f"{REGISTRY_UID}:{REGISTRY_GID}",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp",
        "--volume", f"{config_dir}:/etc/distribution:ro",
        "--volume", f"{data_dir}:/var/lib/registry",
        "--publish", "127.0.0.1::5000",
    ]  # fmt: skip
    for env in container_spec["env"]:
        if "value" in env:
            argv += ["--env", f"{env['name']}={env['value']}"]
    if auth:
        secret = one(objects, "Secret")
        (auth_dir / "htpasswd").write_bytes(base64.b64decode(secret["data"]["htpasswd"]))
        argv += ["--volume", f"{auth_dir}:/etc/distribution-auth:ro"]
    container = docker(*argv, TEST_IMAGE).stdout.strip()
    try:
        port = docker("port", container, "5000/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if http(f"{url}/").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = docker("logs", container, check=False)
                pytest.fail(f"registry did not answer GET /:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.2)
        script = one(objects, "Pod")["spec"]["containers"][0]["command"][-1]
        yield RunningRegistry(container, url, data_dir, script, auth)
    finally:
        docker("rm", "--force", "--volumes", container, check=False)


def test_probe_path_and_v2(registry: RunningRegistry) -> None:
    probe = http(f"{registry.url}/")
    assert probe.status == 200, "the readiness/startup probe path must not need auth"
    v2 = http(f"{registry.url}/v2/")
    assert v2.headers["docker-distribution-api-version"] == "registry/2.0"
    if registry.auth:
        assert v2.status == 401
        assert v2.headers["www-authenticate"].startswith("Basic realm=")
        assert http(f"{registry.url}/v2/", auth=True).status == 200
    else:
        assert v2.status == 200


def test_data_lands_in_the_host_folder_and_delete_works(registry: RunningRegistry) -> None:
    blob = secrets.token_bytes(1024)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    started = http(
        f"{registry.url}/v2/chart-test/blobs/uploads/", method="POST", auth=registry.auth
    )
    assert started.status == 202, started
    location = started.headers["location"]
    if location.startswith("/"):
        location = registry.url + location
    separator = "&" if "?" in location else "?"
    upload = http(f"{location}{separator}digest={digest}", "PUT", data=blob, auth=registry.auth)
    assert upload.status == 201, upload
    stored = list(registry.data_dir.rglob("data"))
    assert any(path.is_file() and path.read_bytes() == blob for path in stored)
    deleted = http(
        f"{registry.url}/v2/chart-test/blobs/{digest}", method="DELETE", auth=registry.auth
    )
    assert deleted.status == 202, "storage.delete.enabled must be on"


def test_helm_test_script_passes_and_discriminates(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    busybox = require_tool("busybox")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("wget", "grep", "sh", "base64", "tr"):
        (bin_dir / applet).symlink_to(busybox)

    def run(expect: str, login: bool) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": str(bin_dir),
            "REGISTRY_URL": f"{registry.url}/v2/",
            "EXPECT_STATUS": expect,
        }
        if login:  # what the pod gets from tests.credentials.existingSecret
            env |= {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
        return subprocess.run(
            [str(bin_dir / "sh"), "-c", registry.test_script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    passing = [("200", registry.auth)] + ([("401", False)] if registry.auth else [])
    for expect, login in passing:
        result = run(expect, login)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"OK: {registry.url}/v2/ answered HTTP {expect}" in result.stdout
    wrong = run("200", False) if registry.auth else run("401", False)
    assert wrong.returncode == 1 and "FAIL" in wrong.stdout


def test_sigterm_drains(registry: RunningRegistry) -> None:
    started = time.monotonic()
    docker("stop", "--time", "30", registry.container)
    assert time.monotonic() - started < 25, "an idle registry stops well within the grace"
    logs = docker("logs", registry.container)
    assert "Draining connections" in logs.stdout + logs.stderr
    state = yaml.safe_load(
        docker("inspect", "--format", "{{json .State}}", registry.container).stdout
    )
    assert state["ExitCode"] == 0
