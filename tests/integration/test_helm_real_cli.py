"""The helm adapter against the REAL Helm 4 and Helm 3 CLIs (no cluster).

* version detection from `helm version --template '{{.Version}}'` on both majors;
* the upgrade flags pallet-dev picks per major are accepted by that major (the run
  then stops at the unreachable cluster), and Helm 4's are refused by Helm 3;
* the chart renders client-side with exactly the values pallet-dev computes, and
  the rendered objects agree with the kind config (nodePort, hostPath, image).

The binaries come from PALLET_DEV_HELM4 / PALLET_DEV_HELM3 (CI builds both), else
`helm` on PATH when it is the right major. Skips without them; fails instead with
PALLET_DEV_REQUIRE_REAL=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pallet_dev.backends.base import UpOptions
from pallet_dev.chart.inputs import NAMESPACE, RELEASE, load_chart_inputs
from pallet_dev.config import Config, RegistrySettings
from pallet_dev.settings import from_config
from pallet_dev.runner import Runner
from pallet_dev.tools.helm import Helm, parse_helm_version, upgrade_flags
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.helm]

CHART = Path(__file__).resolve().parents[2] / "charts" / "pallet-registry"
# a kubeconfig whose context exists but whose API server does not answer
DEAD_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: kind-pdtest
  cluster: {server: "https://127.0.0.1:9"}
contexts:
- name: kind-pdtest
  context: {cluster: kind-pdtest, user: kind-pdtest}
users:
- name: kind-pdtest
  user: {token: unused}
current-context: kind-pdtest
"""


def helm_binary(major: int) -> str:
    variable = f"PALLET_DEV_HELM{major}"
    path = os.environ.get(variable) or shutil.which("helm")
    if not path or not os.access(path, os.X_OK):
        skip_or_fail(f"Helm {major} is not installed (set {variable})")
    assert path is not None
    found = subprocess.run(
        [path, "version", "--template", "{{.Version}}"], capture_output=True, text=True, timeout=30
    ).stdout
    if not found.startswith(f"v{major}."):
        skip_or_fail(f"{path} is Helm {found.strip() or '?'}, not {major} (set {variable})")
    return path


@pytest.fixture(params=[4, 3], ids=["helm4", "helm3"])
def helm(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[int, Helm]:
    major = int(request.param)
    kubeconfig = tmp_path / "dead-kubeconfig"
    kubeconfig.write_text(DEAD_KUBECONFIG)
    adapter = Helm(
        Runner(), kube_context="kind-pdtest", kubeconfig=str(kubeconfig), binary=helm_binary(major)
    )
    return major, adapter


def test_major_version_is_detected(helm: tuple[int, Helm]) -> None:
    major, adapter = helm
    version = adapter.version()
    assert version.major == major
    assert version.raw.startswith(f"v{major}.")


@pytest.fixture
def values_file(tmp_path: Path) -> tuple[Path, Any]:
    config = from_config(Config(registry=RegistrySettings(port=5001)))
    chart = load_chart_inputs(config, UpOptions(), CHART)
    path = tmp_path / "values.json"
    path.write_text(json.dumps(chart.values))
    return path, chart


def test_upgrade_flags_are_accepted_by_their_major(
    helm: tuple[int, Helm], values_file: tuple[Path, Any]
) -> None:
    major, adapter = helm
    path, chart = values_file
    argv = adapter.upgrade_install_argv(
        RELEASE,
        str(CHART),
        NAMESPACE,
        values_files=[str(path)],
        timeout=30,
        description=chart.description,
        version=adapter.version(),
    )
    assert set(upgrade_flags(adapter.version())) <= set(argv)
    result = Runner().run(argv, check=False, timeout=60)
    # every flag parsed: helm got as far as talking to the (absent) cluster
    assert result.returncode != 0
    assert "unreachable" in result.stderr.lower(), result.stderr
    for flag_error in ("unknown flag", "invalid argument", "unknown shorthand"):
        assert flag_error not in result.stderr


def test_helm_3_refuses_helm_4_flags_which_is_why_flags_depend_on_the_major(
    tmp_path: Path,
) -> None:
    binary = helm_binary(3)
    for flags in (["--rollback-on-failure"], ["--wait=watcher"]):
        result = subprocess.run(
            [binary, "upgrade", "--install", RELEASE, str(CHART), *flags],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode != 0
        assert "unknown flag" in result.stderr or "invalid argument" in result.stderr


def test_upgrade_install_dry_run_needs_a_cluster_on_both_majors(helm: tuple[int, Helm]) -> None:
    """Why render() uses `install --dry-run=client` (Helm 4) or `template` (Helm 3)."""
    _, adapter = helm
    argv = [adapter.binary, "upgrade", "--install", RELEASE, str(CHART)]
    argv += ["--namespace", NAMESPACE, "--kube-context", adapter.kube_context]
    argv += ["--kubeconfig", str(adapter.kubeconfig), "--dry-run=client"]
    result = Runner().run(argv, check=False, timeout=60)
    assert result.returncode != 0 and "unreachable" in result.stderr.lower()


def test_chart_renders_with_the_values_pallet_dev_computes(
    helm: tuple[int, Helm], values_file: tuple[Path, Any]
) -> None:
    _, adapter = helm
    path, chart = values_file
    manifests = adapter.render(RELEASE, str(CHART), NAMESPACE, values_files=[str(path)])
    objects = {
        (doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(manifests) if doc
    }
    service = objects[("Service", "registry-pallet-registry")]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == chart.node_port
    assert chart.service_host.startswith("registry-pallet-registry.pallet.svc")
    volume = next(doc for key, doc in objects.items() if key[0] == "PersistentVolume")
    assert volume["spec"]["hostPath"]["path"] == chart.node_data_dir
    deployment = objects[("Deployment", "registry-pallet-registry")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == chart.image
    assert container["imagePullPolicy"] == "IfNotPresent"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == RELEASE
    assert labels["app.kubernetes.io/component"] == "registry"
    assert all(doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE for doc in objects.values())


def test_version_parser_reads_both_real_outputs() -> None:
    for major in (4, 3):
        binary = helm_binary(major)
        out = subprocess.run(
            [binary, "version", "--template", "{{.Version}}"],
            capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        assert parse_helm_version(out).major == major
