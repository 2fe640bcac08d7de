"""The chart rendered by the real Helm 3 and Helm 4: lint, object assertions, and strict
Kubernetes OpenAPI validation for the lowest and highest version in kubeVersion."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pallet_dev.chart.constants import (
    CONTAINER_PORT,
    DEFAULT_IMAGE,
    DEFAULT_NODE_PORT,
    NODE_DATA_PATH,
    REGISTRY_UID,
)
from pallet_dev.chart.loader import load_values
from tests.chart.conftest import (
    CHART_DIR,
    DEV_VALUES,
    NAMESPACE,
    RELEASE,
    Helm,
    by_kind,
    chart_kube_versions,
    find_helm,
    one,
)

pytestmark = pytest.mark.helm

FULLNAME = f"{RELEASE}-pallet-registry"
BCRYPT_LINE = "pallet:$2b$10$7Ml9oCtJcH3ez32Ike0OXephfBwWpHX0AG3Xy3GGOLAWy/eIBz4b."
STANDARD_LABELS = {
    "helm.sh/chart": "pallet-registry-0.1.2",
    "app.kubernetes.io/name": "pallet-registry",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/version": "3.1.2",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/part-of": "pallet-dev",
}
AUTH_SETS = ("auth.htpasswd.enabled=true",)
MIRROR_CACHES = (
    {"name": "docker-io", "upstream": "docker.io", "remoteUrl": "https://registry-1.docker.io"},
    {
        "name": "registry-corp-8443",
        "upstream": "registry.corp:8443",
        "remoteUrl": "https://registry.corp:8443",
        "credentialsSecret": "registry-mirror-credentials",
        "caConfigMap": "registry-mirror-cas",
    },
)
AUTH_STRINGS = (f"auth.htpasswd.entries[0]={BCRYPT_LINE}",)

# Value sets that together reach every template branch (used for schema validation).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "dev": {"files": (DEV_VALUES,)},
    "dev-hostpath-auth": {
        "files": (DEV_VALUES,),
        "sets": ("persistence.hostPath.enabled=true", *AUTH_SETS),
        "set_strings": AUTH_STRINGS,
    },
    "existing-claim-clusterip-existing-auth": {
        "sets": (
            "persistence.existingClaim=registry-data",
            "service.type=ClusterIP",
            "auth.htpasswd.enabled=true",
            "auth.htpasswd.existingSecret=registry-users",
            "tests.credentials.existingSecret=registry-test-login",
        ),
    },
    # the pull-through caches as pallet-dev sets them (tests/chart/test_render_mirrors.py)
    "dev-hostpath-mirrors": {
        "files": (DEV_VALUES,),
        "sets": (
            "persistence.hostPath.enabled=true",
            "mirrors.caches[0].nodePort=30051",
            "mirrors.caches[1].nodePort=30052",
        ),
        "set_strings": tuple(
            f"mirrors.caches[{index}].{key}={value}"
            for index, cache in enumerate(MIRROR_CACHES)
            for key, value in cache.items()
        )
        + ("mirrors.inputsDigest=0123abcd",),
    },
    "emptydir-replicas-extras": {
        "sets": (
            "persistence.enabled=false",
            "replicaCount=2",
            "deploymentStrategy=RollingUpdate",
            "registry.httpSecret.existingSecret=registry-http",
            "registry.preStopSleepSeconds=0",
            "resources.limits.cpu=null",
            "podLabels.team=pallet",
            "podAnnotations.note=x",
            "nodeSelector.kubernetes\\.io/os=linux",
            "imagePullSecrets[0].name=pull",
            "tolerations[0].key=dedicated",
            "tolerations[0].operator=Exists",
            "tolerations[0].effect=NoSchedule",
            "service.annotations.a=b",
            "tests.image.repository=busybox",
            "tests.image.tag=1.37",
        ),
    },
}


def render(helm: Helm, name: str, kube_version: str | None = None) -> list[dict[str, Any]]:
    spec = VALUE_SETS[name]
    return helm.render(
        *spec.get("files", ()),
        sets=spec.get("sets", ()),
        set_strings=spec.get("set_strings", ()),
        kube_version=kube_version,
    )


@functools.cache
def _validate(document: str, kube_version: str) -> str | None:
    """Strict OpenAPI validation, once per distinct object (Helm 3 and 4 render the same)."""
    obj = json.loads(document)
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{obj['kind']} {obj['metadata']['name']} @ {kube_version}: {exc}"
    return None


def registry_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["registry"]
    return dict(containers[0])


def registry_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yml"])
    return config


# --- lint --------------------------------------------------------------------------


@pytest.mark.parametrize("dev", [False, True], ids=["defaults", "dev"])
def test_lint_strict_is_clean(helm: Helm, dev: bool) -> None:
    argv = ["lint", "--strict", str(CHART_DIR), "--kube-version", helm.kube_version]
    if dev:
        argv += ["--values", str(DEV_VALUES)]
    result = helm.run(*argv)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output and "[INFO]" not in output


# --- OpenAPI validation ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_is_valid_for_the_lowest_and_highest_kubernetes(helm: Helm, name: str) -> None:
    for kube_version in chart_kube_versions():
        objects = render(helm, name, kube_version=kube_version)
        assert objects
        for obj in objects:
            problem = _validate(json.dumps(obj, sort_keys=True), kube_version)
            assert problem is None, problem


def test_kubernetes_validate_ships_the_chart_range() -> None:
    low, high = chart_kube_versions()
    shipped = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    assert {low.rsplit(".", 1)[0], high.rsplit(".", 1)[0]} <= shipped


@pytest.mark.parametrize("outside", ["1.30.0", "1.38.0"])
def test_kube_version_range_is_enforced(helm: Helm, outside: str) -> None:
    result = helm.template(kube_version=outside)
    assert result.returncode != 0
    assert "incompatible with Kubernetes" in result.stderr


# --- the objects -------------------------------------------------------------------


def test_default_objects_and_labels(helm: Helm) -> None:
    objects = render(helm, "dev")
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Pod", "Service"]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key, value in STANDARD_LABELS.items():
            assert labels.get(key) == value, f"{obj['kind']} label {key}"
        if obj["kind"] != "PersistentVolume":
            assert obj["metadata"]["namespace"] == NAMESPACE
    deployment = one(objects, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "pallet-registry",
        "app.kubernetes.io/instance": RELEASE,
    }
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert one(objects, "Service")["spec"]["selector"] == selector


def test_service_node_port_is_the_one_the_kind_mapping_uses(helm: Helm) -> None:
    service = one(render(helm, "dev"), "Service")
    assert service["metadata"]["name"] == FULLNAME
    assert service["spec"]["type"] == "NodePort"
    (port,) = service["spec"]["ports"]
    assert port["nodePort"] == DEFAULT_NODE_PORT == load_values(CHART_DIR).service.node_port
    assert port["port"] == CONTAINER_PORT and port["targetPort"] == "http"
    moved = one(helm.render(sets=["service.nodePort=30051"]), "Service")
    assert moved["spec"]["ports"][0]["nodePort"] == 30051
    cluster_ip = one(render(helm, "existing-claim-clusterip-existing-auth"), "Service")
    assert "nodePort" not in cluster_ip["spec"]["ports"][0]


def test_pvc_is_kept_on_uninstall(helm: Helm) -> None:
    objects = render(helm, "dev")
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Mi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"], "null: the cluster's default class"
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    data = next(v for v in volumes if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    named = one(helm.render(sets=["persistence.storageClass=fast"]), "PersistentVolumeClaim")
    assert named["spec"]["storageClassName"] == "fast"


def test_host_path_volume_binds_only_our_claim(helm: Helm) -> None:
    objects = render(helm, "dev-hostpath-auth")
    pv = one(objects, "PersistentVolume")
    pvc = one(objects, "PersistentVolumeClaim")
    assert pv["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pv["spec"]["hostPath"] == {"path": NODE_DATA_PATH, "type": "Directory"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["storageClassName"] == "" == pvc["spec"]["storageClassName"]
    assert pv["spec"]["claimRef"]["name"] == pvc["metadata"]["name"]
    assert pv["spec"]["claimRef"]["namespace"] == NAMESPACE
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["capacity"]["storage"] == pvc["spec"]["resources"]["requests"]["storage"]
    assert NAMESPACE in pv["metadata"]["name"], "PVs are cluster-wide"


def test_existing_claim_and_empty_dir(helm: Helm) -> None:
    existing = render(helm, "existing-claim-clusterip-existing-auth")
    assert not by_kind(existing, "PersistentVolumeClaim")
    volumes = one(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
    data = next(v for v in volumes if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == "registry-data"

    ephemeral = render(helm, "emptydir-replicas-extras")
    assert not by_kind(ephemeral, "PersistentVolumeClaim")
    volumes = one(ephemeral, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "data") == {"name": "data", "emptyDir": {}}


def test_pod_security(helm: Helm) -> None:
    objects = render(helm, "dev-hostpath-auth")
    pods = [one(objects, "Deployment")["spec"]["template"]["spec"], one(objects, "Pod")["spec"]]
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == REGISTRY_UID and context["runAsGroup"] == REGISTRY_UID
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert container["resources"]["limits"]["memory"]


def test_probes_survive_auth_and_drain_is_graceful(helm: Helm) -> None:
    objects = render(helm, "dev-hostpath-auth")
    container = registry_container(objects)
    probes = {name: container[name] for name in ("startupProbe", "readinessProbe")}
    for name, probe in probes.items():
        assert probe["httpGet"] == {"path": "/", "port": "http"}, name
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert "/v2" not in yaml.safe_dump([container[p] for p in ("startupProbe", "livenessProbe")])
    assert container["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert {"name": "OTEL_TRACES_EXPORTER", "value": "none"} in container["env"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["image"] == DEFAULT_IMAGE
    assert "command" not in container and "args" not in container

    config = registry_config(objects)
    drain = int(config["http"]["draintimeout"].rstrip("s"))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = one(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + drain
    assert one(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_registry_config_content(helm: Helm) -> None:
    objects = render(helm, "dev")
    config = registry_config(objects)
    assert config["version"] == 0.1
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config["storage"]["maintenance"]["uploadpurging"]["enabled"] is True
    assert config["http"]["addr"] == f":{CONTAINER_PORT}"
    assert config["http"]["draintimeout"] == "10s"
    assert config["health"]["storagedriver"]["enabled"] is True
    assert "auth" not in config
    assert "secret" not in config["http"], "never a generated secret"

    mounts = {m["name"]: m for m in registry_container(objects)["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/distribution" and mounts["config"]["readOnly"]
    assert mounts["data"]["mountPath"] == config["storage"]["filesystem"]["rootdirectory"]
    assert mounts["tmp"]["mountPath"] == "/tmp"
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    config_volume = next(v for v in volumes if v["name"] == "config")
    assert config_volume["configMap"]["name"] == one(objects, "ConfigMap")["metadata"]["name"]


def test_htpasswd_auth_inline_and_existing(helm: Helm) -> None:
    objects = render(helm, "dev-hostpath-auth")
    config = registry_config(objects)
    secret = one(objects, "Secret")
    assert base64.b64decode(secret["data"]["htpasswd"]).decode() == BCRYPT_LINE + "\n"
    container = registry_container(objects)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "htpasswd")
    assert config["auth"]["htpasswd"]["path"] == f"{mount['mountPath']}/htpasswd"
    assert config["auth"]["htpasswd"]["realm"] == "pallet-registry"
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    htpasswd = next(v for v in volumes if v["name"] == "htpasswd")
    assert htpasswd["secret"]["secretName"] == secret["metadata"]["name"]
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/htpasswd" in annotations

    existing = render(helm, "existing-claim-clusterip-existing-auth")
    assert not by_kind(existing, "Secret")
    volumes = one(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
    htpasswd = next(v for v in volumes if v["name"] == "htpasswd")
    assert htpasswd["secret"]["secretName"] == "registry-users"


def test_extras_are_wired(helm: Helm) -> None:
    objects = render(helm, "emptydir-replicas-extras")
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert pod["metadata"]["labels"]["team"] == "pallet"
    assert pod["metadata"]["annotations"]["note"] == "x"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    container = registry_container(objects)
    assert "lifecycle" not in container
    assert "cpu" not in container["resources"]["limits"]
    secret_env = next(e for e in container["env"] if e["name"] == "REGISTRY_HTTP_SECRET")
    assert secret_env["valueFrom"]["secretKeyRef"] == {
        "name": "registry-http",
        "key": "haSharedSecret",
    }
    assert one(objects, "Pod")["spec"]["containers"][0]["image"] == "busybox:1.37"


def test_pod_labels_never_replace_the_selector_labels(helm: Helm) -> None:
    objects = helm.render(sets=["podLabels.app\\.kubernetes\\.io/name=other"])
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "pallet-registry"


# --- determinism and the config checksum -------------------------------------------


def pod_template_annotations(objects: list[dict[str, Any]]) -> dict[str, str]:
    annotations: dict[str, str] = one(objects, "Deployment")["spec"]["template"]["metadata"][
        "annotations"
    ]
    return annotations


def test_rendering_is_deterministic(helm: Helm) -> None:
    spec = VALUE_SETS["dev-hostpath-auth"]
    first = helm.template(*spec["files"], sets=spec["sets"], set_strings=spec["set_strings"]).stdout
    second = helm.template(
        *spec["files"], sets=spec["sets"], set_strings=spec["set_strings"]
    ).stdout
    assert first and first == second


def test_config_checksum_rolls_the_pod_only_on_config_changes(helm: Helm) -> None:
    base = pod_template_annotations(helm.render())["checksum/config"]
    assert len(base) == 64
    scaled = pod_template_annotations(helm.render(sets=["replicaCount=0"]))
    assert scaled["checksum/config"] == base
    changed = pod_template_annotations(helm.render(sets=["registry.logLevel=debug"]))
    assert changed["checksum/config"] != base


def test_helm3_and_helm4_render_the_same_objects() -> None:
    helm3, helm4 = find_helm("helm3"), find_helm("helm4")
    for name in VALUE_SETS:
        assert render(helm3, name) == render(helm4, name), name


# --- helm test and NOTES -------------------------------------------------------------


def test_helm_test_pod_checks_v2_and_the_api_header(helm: Helm) -> None:
    objects = render(helm, "dev")
    pod = one(objects, "Pod")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["activeDeadlineSeconds"] <= 120
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["REGISTRY_URL"] == f"http://{FULLNAME}.{NAMESPACE}.svc:{CONTAINER_PORT}/v2/"
    assert env["EXPECT_STATUS"] == "200"
    script = container["command"][-1]
    assert "docker-distribution-api-version" in script.lower()
    assert container["image"] == DEFAULT_IMAGE, "the preloaded image: nothing to pull"
    with_auth = one(render(helm, "dev-hostpath-auth"), "Pod")
    auth_env = {e["name"]: e["value"] for e in with_auth["spec"]["containers"][0]["env"]}
    assert auth_env["EXPECT_STATUS"] == "401", "auth on, no credentials: auth is enforced"
    login = one(render(helm, "existing-claim-clusterip-existing-auth"), "Pod")
    login_env = {e["name"]: e for e in login["spec"]["containers"][0]["env"]}
    assert login_env["EXPECT_STATUS"]["value"] == "200"
    for name, key in (("REGISTRY_USERNAME", "username"), ("REGISTRY_PASSWORD", "password")):
        reference = login_env[name]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": "registry-test-login", "key": key}
    assert not by_kind(helm.render(sets=["tests.enabled=false"]), "Pod")


def test_notes_show_push_and_pull() -> None:
    # `install --dry-run=client` renders NOTES.txt without a cluster on Helm 4 only
    # (Helm 3 still contacts the API server).
    helm4 = find_helm("helm4")
    result = helm4.run(
        "install",
        RELEASE,
        str(CHART_DIR),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--values",
        str(DEV_VALUES),
        "--set",
        "persistence.hostPath.enabled=true",
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "docker push localhost:5001/" in notes and "docker pull localhost:5001/" in notes
    assert f"containerPort: {DEFAULT_NODE_PORT}" in notes
    assert f"http://{FULLNAME}.{NAMESPACE}.svc:{CONTAINER_PORT}/v2/" in notes
    assert NODE_DATA_PATH in notes and "helm.sh/resource-policy: keep" in notes
    assert f"helm test {RELEASE}" in notes


def test_the_validated_model_dump_renders_like_the_layers(helm: Helm, tmp_path: Path) -> None:
    """The kind backend hands Helm `load_values(...).model_dump(by_alias=True,
    mode="json", exclude_none=True)` as one file: it must pass the schema and render
    exactly what the layered files and --set flags render."""
    spec = VALUE_SETS["dev-hostpath-auth"]
    loaded = load_values(
        CHART_DIR,
        set_overrides=[*spec["sets"], f"auth.htpasswd.entries={{{BCRYPT_LINE}}}"],
    )
    dumped = tmp_path / "values.yaml"
    dumped.write_text(
        yaml.safe_dump(loaded.model_dump(by_alias=True, mode="json", exclude_none=True))
    )
    assert helm.render(dumped) == render(helm, "dev-hostpath-auth")
