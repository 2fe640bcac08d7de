"""The pull-through caches as the chart renders them (real Helm): one Pod, one container
per cache, NodePorts, kept storage, credentials only by Secret reference."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import Helm, by_kind
from tests.chart.test_render import MIRROR_CACHES, render

pytestmark = pytest.mark.helm


def mirrors_objects(helm: Helm) -> list[dict[str, Any]]:
    return [
        obj
        for obj in render(helm, "dev-hostpath-mirrors")
        if obj["metadata"]["name"].endswith("-mirrors")
    ]


def test_no_cache_objects_by_default(helm: Helm) -> None:
    for name in ("defaults", "dev"):
        assert not [o for o in render(helm, name) if o["metadata"]["name"].endswith("-mirrors")]


def test_registry_selectors_never_match_the_caches(helm: Helm) -> None:
    for obj in mirrors_objects(helm):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "pallet-registry-mirrors", obj["kind"]
        assert labels["app.kubernetes.io/component"] == "mirrors"


def test_one_pod_runs_a_proxy_container_per_cache(helm: Helm) -> None:
    objects = mirrors_objects(helm)
    [deployment] = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["checksum/mirror-inputs"] == "0123abcd"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "mirrors"
    # the registry's Service selects name=pallet-registry: never the caches' Pod
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "pallet-registry-mirrors"
    hub, corp = pod["spec"]["containers"]
    env = {item["name"]: item for item in hub["env"]}
    assert env["REGISTRY_HTTP_ADDR"]["value"] == ":5001"
    assert env["REGISTRY_PROXY_REMOTEURL"]["value"] == "https://registry-1.docker.io"
    assert env["REGISTRY_PROXY_EXEC_COMMAND"]["value"] == "/pallet-dev/no-credentials"
    assert "SSL_CERT_FILE" not in env
    assert hub["readinessProbe"]["httpGet"] == {"path": "/", "port": 5001}
    env = {item["name"]: item for item in corp["env"]}
    assert env["REGISTRY_HTTP_ADDR"]["value"] == ":5002"
    assert env["REGISTRY_PROXY_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "registry-mirror-credentials",
        "key": "registry-corp-8443-password",
    }
    assert "REGISTRY_PROXY_EXEC_COMMAND" not in env
    assert env["SSL_CERT_FILE"]["value"] == "/etc/pallet-dev/upstream-ca/registry-corp-8443.crt"
    mounts = {m["name"]: m for m in corp["volumeMounts"]}
    assert mounts["data"]["subPath"] == "registry-corp-8443"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"]["hostPath"] == {
        "path": "/var/lib/pallet-registry/_mirrors",
        "type": "Directory",
    }
    assert volumes["ca-registry-corp-8443"]["configMap"]["name"] == "registry-mirror-cas"
    assert [c["name"] for c in pod["spec"]["containers"]] == [c["name"] for c in MIRROR_CACHES]


def test_each_cache_has_its_fixed_node_port(helm: Helm) -> None:
    [service] = by_kind(mirrors_objects(helm), "Service")
    assert service["spec"]["type"] == "NodePort"
    assert [(p["port"], p["nodePort"]) for p in service["spec"]["ports"]] == [
        (5001, 30051),
        (5002, 30052),
    ]
    assert service["spec"]["selector"]["app.kubernetes.io/name"] == "pallet-registry-mirrors"
