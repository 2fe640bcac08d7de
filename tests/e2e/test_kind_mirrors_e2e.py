"""The kind backend's pull-through cache, offline: an image pulled once through the cache
runs again with its upstream gone, also after `down` and `up` (a new node).

The upstream is a registry of the test's own (TLS from a test CA) on the `kind` network.
One cluster; the same conditions as test_kind_e2e.py (its `env` fixture; node_image and
tools come from tests/e2e/conftest.py).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.e2e.test_kind_e2e import (  # noqa: F401 - fixtures
    _busybox_image,
    _run,
    _run_pod,
    _say,
    env,
    pallet_dev,
)
from tests.support.tls_upstream import copy_image, start_tls_upstream

pytestmark = [pytest.mark.kind_e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

KIND_NETWORK = "kind"
REPOSITORY = "pdtest/cached"


def _requests_for(logs: str) -> int:
    """Pulls the upstream served (its access log; the copy into it only POSTs and PUTs)."""
    return sum(logs.count(f'"{method} /v2/{REPOSITORY}/') for method in ("GET", "HEAD"))


def _pod_start(kubectl: list[str], image: str) -> tuple[float, str]:
    """Seconds from `kubectl run` (pull policy IfNotPresent) until the pod's container ran
    to its end, and the kubelet's pull event for it ("" when it pulled nothing)."""
    pod = f"pdtest-start-{secrets.token_hex(3)}"
    started = time.monotonic()
    created = _run(
        [*kubectl, "run", pod, f"--image={image}", "--image-pull-policy=IfNotPresent",
         "--restart=Never", "--command", "--", "/bin/sh", "-c", "echo started"],
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    waited = _run(
        [*kubectl, "wait", f"pod/{pod}", "--for=jsonpath={.status.phase}=Succeeded",
         "--timeout=300s"], timeout=320,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert waited.returncode == 0, waited.stderr
    events = _run(
        [*kubectl, "get", "events", "--field-selector", f"involvedObject.name={pod},reason=Pulled",
         "-o", "jsonpath={.items[*].message}"],
    )  # fmt: skip
    return seconds, events.stdout.strip()


def test_pods_pull_through_the_cache_with_the_upstream_gone(
    env: dict[str, str],  # noqa: F811 - the fixture
    tools: dict[str, str],
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    docker, name = tools["docker"], env["PALLET_DEV_NAME"]
    port = env["PALLET_DEV_REGISTRY_PORT"]
    kubectl = [tools["kubectl"], "--kubeconfig", env["KUBECONFIG"], "--context", f"kind-{name}"]
    node = f"{name}-control-plane"
    upstream_name = f"{name}-upstream"
    upstream_host = f"{upstream_name}:5000"
    image = f"{upstream_host}/{REPOSITORY}:1"
    local = f"localhost:{port}/{REPOSITORY}:1"
    certs = tmp_path / "certs"
    config = tmp_path / "pallet-dev.yaml"
    upstream = None
    try:
        # the cluster first: it makes the `kind` network the upstream joins
        config.write_text("mirrors: []\n")
        pallet_dev(env, "--config", str(config), "up", "--json", "--timeout", "900")
        # the caches' pod reaches the upstream by address (cluster DNS does not know it)
        upstream = start_tls_upstream(upstream_name, certs, network=KIND_NETWORK)
        address = upstream.ip
        config.write_text(
            "mirrors:\n"
            f"  - upstream: {upstream_host}\n"
            f"    remote_url: https://{address}:5000\n"
            f"    ca_file: {certs / 'ca.crt'}\n"
        )
        summary = pallet_dev(env, "--config", str(config), "up", "--json", "--timeout", "600")
        assert "wrote-mirror-hosts-toml" in summary["actions"], summary
        hosts = _run(
            [docker, "exec", node, "cat", f"/etc/containerd/certs.d/{upstream_host}/hosts.toml"]
        )
        assert f'server = "https://{address}:5000"' in hosts.stdout
        assert f'[host."http://{node}:30051"]' in hosts.stdout

        # an image built here, put in the upstream through the local registry
        _busybox_image(docker, local)
        pallet_dev(env, "--config", str(config), "push", local, "--json")
        copy_image(f"http://127.0.0.1:{port}", upstream.url, REPOSITORY, "1", str(upstream.ca_file))

        assert "hello-from-the-registry" in _run_pod(kubectl, image)
        first = _requests_for(upstream.logs())
        assert first > 0, "the first pull did not reach the upstream through the cache"
        status = pallet_dev(env, "--config", str(config), "status", "--json")
        [cache] = status["mirrors"]
        assert cache["upstream"] == upstream_host and cache["entries"] == 1
        assert cache["size_bytes"] > 0 and cache["hits"] is None

        upstream.stop()
        removed = _run([docker, "exec", node, "crictl", "rmi", image])
        assert removed.returncode == 0, removed.stderr
        assert "hello-from-the-registry" in _run_pod(kubectl, image)
        # a pod's start with the image already on the node, then served by the cache
        preloaded, _ = _pod_start(kubectl, image)
        removed = _run([docker, "exec", node, "crictl", "rmi", image])
        assert removed.returncode == 0, removed.stderr
        cached, pulled = _pod_start(kubectl, image)
        assert "Successfully pulled" in pulled, pulled  # it did pull, from the cache
        record_property(
            "figure",
            f"pod start on kind, image preloaded on the node {preloaded:.2f} s, served by the "
            f"pull-through cache {cached:.2f} s ({cached / preloaded:.2f}x; kubelet: {pulled})",
        )

        pallet_dev(env, "--config", str(config), "down", "--json")
        pallet_dev(env, "--config", str(config), "up", "--json", "--timeout", "900")
        listed = _run([docker, "exec", f"{name}-control-plane", "crictl", "images", "-o", "json"])
        assert image not in listed.stdout  # a new node: only the cache has it
        assert "hello-from-the-registry" in _run_pod(kubectl, image)
        assert _requests_for(upstream.logs()) == first
        _say(f"cache served {image} offline; upstream saw {first} requests, all on the first pull")

        pallet_dev(env, "--config", str(config), "down", "--clean", "--json")
        data = Path(env["PALLET_DEV_HOME"]) / "data" / name
        assert not (data / "registry" / "_mirrors").exists()
    finally:
        if upstream is not None:
            upstream.remove()
        _run([docker, "rmi", local], timeout=120)
