"""kind backend orchestration against fake kind/helm/kubectl/docker (runner seam).

The fakes (tests/fakes) keep a small simulated world -- clusters, node files, the
user's kubeconfig, releases, ConfigMaps -- so the tests assert on the exact
commands, their order and the end state, including re-runs and failures.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from pallet_dev import versions
from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.kind import KindBackend
from pallet_dev.backends.registry_wiring import hosts_toml
from pallet_dev.chart.inputs import (
    CHART_DIR_ENV,
    NAMESPACE,
    RELEASE,
    chart_fullname,
    find_chart_dir,
    image_values,
    pallet_dev_values,
)
from pallet_dev.chart.constants import DEFAULT_NODE_PORT, NODE_DATA_PATH
from pallet_dev.config import Config, KindSettings, RegistrySettings
from pallet_dev.settings import from_config
from pallet_dev.errors import (
    ConfigError,
    DaemonUnavailable,
    OperationFailed,
    PortInUse,
    PrerequisiteError,
    ReadinessTimeout,
)
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from tests.fakes.runner import FakeToolsRunner
from tests.support.http_servers import free_port, registry_server

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pallet-registry"
NAME = "pdt-kind"
NODE = f"{NAME}-control-plane"
CONTEXT = f"kind-{NAME}"


def from_nothing(node: str = NODE) -> list[str]:
    """The commands of `up` from nothing, in order (with one step at a time)."""
    return [
        "docker version",
        "kind get clusters",
        "docker info",  # the preflight before anything is created
        "kind create cluster",
        "kind get nodes",
        "kubectl get nodes",
        # independent steps, run at once outside the tests
        f"docker exec {node}",  # read hosts.toml
        "docker exec",  # write it (`-i`)
        "kubectl config view",
        "kubectl config set-cluster",
        "kubectl config set-credentials",
        "kubectl config set-context",
        "kubectl get configmap",
        "kubectl apply",
        "helm version",
        "helm history registry",
        "docker image inspect",
        f"docker exec {node}",  # crictl inspecti: is the registry image in the node?
        "kind load docker-image",
        # then
        "helm upgrade",  # helm waits for the rollout itself
    ]


def reused_unchanged(node: str = NODE) -> list[str]:
    """The commands of `up` when the cluster and the release exist and nothing changed."""
    return [
        "docker version",
        "kind get clusters",
        "docker container inspect",
        "kind get nodes",
        "kubectl get nodes",
        f"docker exec {node}",
        "kubectl config view",
        "kubectl get configmap",
        "helm version",
        "helm history registry",
        "docker image inspect",
        f"docker exec {node}",
        "kubectl rollout status",
    ]


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")


@pytest.fixture
def runner() -> Iterator[FakeToolsRunner]:
    fake = FakeToolsRunner()
    # the user's kubeconfig already points at some other cluster
    fake.state["user_kubeconfig"]["contexts"]["prod"] = {"cluster": "prod", "user": "me"}
    fake.state["user_kubeconfig"]["current-context"] = "prod"
    yield fake
    fake.close()


@pytest.fixture
def port() -> int:
    return free_port()


def make(
    runner: FakeToolsRunner,
    paths: Paths,
    port: int,
    *,
    chart_dir: Path = CHART,
    node_image: str | None = None,
) -> KindBackend:
    kind = KindSettings(node_image=node_image) if node_image else KindSettings()
    # the registry's path only; the pull-through caches' steps: test_kind_mirrors.py
    config = from_config(
        Config(name=NAME, registry=RegistrySettings(port=port), kind=kind, mirrors=[])
    )
    backend = KindBackend(config, runner, paths, chart_dir=chart_dir)
    backend.poll_interval = 0.0
    backend.max_parallel = 1  # the independent steps in a fixed order
    return backend


def quiet() -> Steps:
    return Steps(io.StringIO())


def up(backend: KindBackend, **options: Any) -> Any:
    return backend.up(UpOptions(timeout=options.pop("timeout", 20), **options), quiet())


def call(runner: FakeToolsRunner, *words: str) -> list[str]:
    """The first recorded call whose argv contains ``words`` in order."""
    for argv in runner.calls:
        position = 0
        for arg in argv:
            if position < len(words) and arg == words[position]:
                position += 1
        if position == len(words):
            return argv
    raise AssertionError(f"no call with {words}: {runner.commands()}")


# --------------------------------------------------------------------------- up


def test_up_from_nothing_runs_every_step_in_order(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    result = up(backend)
    assert runner.commands() == from_nothing()
    assert result.changed and result.endpoint == f"http://127.0.0.1:{port}"
    assert result.actions == [
        "created-cluster",
        "wrote-hosts-toml",
        "published-context",
        "applied-local-registry-hosting",
        "loaded-image",
        "deployed-release",
    ]


def test_kind_is_given_the_generated_config_and_a_private_kubeconfig(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    create = call(runner, "kind", "create", "cluster")
    assert create == [
        "kind",
        "create",
        "cluster",
        "--name",
        NAME,
        "--config",
        str(backend.kind_config_path),
        "--kubeconfig",
        str(backend.kubeconfig_path),
    ]
    written = yaml.safe_load(backend.kind_config_path.read_text())
    assert written == backend.plan_up(UpOptions()).kind_config
    node = written["nodes"][0]
    assert node["extraPortMappings"] == [
        {
            "containerPort": DEFAULT_NODE_PORT,
            "hostPort": port,
            "listenAddress": "127.0.0.1",
            "protocol": "TCP",
        }
    ]
    assert node["extraMounts"] == [
        {"hostPath": str(paths.registry_data_dir(NAME)), "containerPath": NODE_DATA_PATH}
    ]
    assert "@sha256:" in node["image"]
    assert 'config_path = "/etc/containerd/certs.d"' in written["containerdConfigPatches"][0]
    assert stat.S_IMODE(backend.kubeconfig_path.stat().st_mode) == 0o600


def test_user_current_context_is_never_changed_but_kind_context_is_added(
    runner, paths, port
) -> None:
    backend = make(runner, paths, port)
    up(backend)
    user = runner.state["user_kubeconfig"]
    assert user["current-context"] == "prod"
    assert user["contexts"][CONTEXT] == {"cluster": CONTEXT, "user": CONTEXT}
    assert base64.b64decode(user["users"][CONTEXT]["client-key-data"]) == b"key of pdt-kind"
    # kind only switched the context inside pallet-dev's private kubeconfig
    private = json.loads(backend.kubeconfig_path.read_text())
    assert private["current-context"] == CONTEXT
    # the certificate copies are gone again
    assert not backend.certs_dir.exists()
    # every call to the cluster names the context (and our kubeconfig) explicitly
    for argv in runner.calls:
        if argv[0] == "kubectl" and argv[1] != "config":
            assert argv[1:5] == ["--kubeconfig", str(backend.kubeconfig_path), "--context", CONTEXT]
        if argv[0] == "helm" and argv[1] != "version":
            assert argv[argv.index("--kube-context") + 1] == CONTEXT


def test_hosts_toml_routes_localhost_port_to_the_node_port(runner, paths, port) -> None:
    up(make(runner, paths, port))
    path = f"/etc/containerd/certs.d/localhost:{port}/hosts.toml"
    content = runner.state["node_files"][NODE][path]
    assert content == hosts_toml(port, NODE, DEFAULT_NODE_PORT)
    assert f'[host."http://{NODE}:{DEFAULT_NODE_PORT}"]' in content
    assert 'capabilities = ["pull", "resolve"]' in content
    write = call(runner, "docker", "exec", "-i")
    assert write[-2:] == [f"/etc/containerd/certs.d/localhost:{port}", path]
    assert runner.inputs[runner.calls.index(write)] == content


def test_local_registry_hosting_configmap_follows_kep_1755(runner, paths, port) -> None:
    up(make(runner, paths, port))
    configmap = runner.state["configmaps"]["kube-public/local-registry-hosting"]
    hosting = yaml.safe_load(configmap["data"]["localRegistryHosting.v1"])
    assert hosting == {
        "host": f"localhost:{port}",
        "hostFromContainerRuntime": f"localhost:{port}",
        "hostFromClusterNetwork": "registry-pallet-registry.pallet.svc.cluster.local:5000",
        "help": "https://kind.sigs.k8s.io/docs/user/local-registry/",
    }


def test_helm_4_gets_rollback_on_failure_and_watcher_wait(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    upgrade = call(runner, "helm", "upgrade")
    assert upgrade[:5] == ["helm", "upgrade", "--install", RELEASE, str(CHART)]
    assert ["--namespace", NAMESPACE] == upgrade[5:7]
    assert "--rollback-on-failure" in upgrade and "--wait=watcher" in upgrade
    assert "--atomic" not in upgrade and "--wait" not in upgrade
    assert upgrade[upgrade.index("--values") + 1] == str(backend.values_path)
    values = json.loads(backend.values_path.read_text())
    assert values["persistence"]["hostPath"] == {"enabled": True, "path": NODE_DATA_PATH}
    assert values["service"]["nodePort"] == DEFAULT_NODE_PORT
    assert stat.S_IMODE(backend.values_path.stat().st_mode) == 0o600
    # the dry-run plan shows the same command
    plan = backend.plan_up(UpOptions(timeout=20))
    planned = next(step.argv for step in plan.steps if "upgrade" in step.argv)
    # the plan shows the whole --timeout, up the time left of it
    at = upgrade.index("--timeout") + 1
    assert planned[at] == "20s" and int(upgrade[at].rstrip("s")) in range(15, 21)
    planned[at] = upgrade[at]
    assert planned == upgrade


def test_helm_3_gets_atomic_and_plain_wait(runner, paths, port) -> None:
    runner.state["helm_version"] = "v3.22.0+g1234"
    up(make(runner, paths, port))
    upgrade = call(runner, "helm", "upgrade")
    assert "--atomic" in upgrade and "--wait" in upgrade
    assert "--rollback-on-failure" not in upgrade
    assert not any(arg.startswith("--wait=") for arg in upgrade)


def test_registry_image_is_loaded_from_the_host_not_pulled(runner, paths, port) -> None:
    up(make(runner, paths, port))
    assert call(runner, "kind", "load") == [
        "kind",
        "load",
        "docker-image",
        "registry:3.1.2",
        "--name",
        NAME,
    ]
    assert runner.state["clusters"][NAME]["images"] == ["registry:3.1.2"]


def test_image_missing_on_the_host_is_not_loaded_and_a_note_says_so(runner, paths, port) -> None:
    runner.state["host_images"] = []
    stream = io.StringIO()
    make(runner, paths, port).up(UpOptions(timeout=20), Steps(stream))
    assert "kind load docker-image" not in runner.commands()
    assert "registry:3.1.2 is not in the host's Docker" in stream.getvalue()


def test_image_lost_from_the_node_is_loaded_again_without_a_new_revision(
    runner, paths, port
) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.state["clusters"][NAME]["images"] = []  # e.g. the kubelet's image GC
    runner.reset_calls()
    assert up(backend).actions == ["loaded-image"]
    assert runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["version"] == 1


def test_data_folder_is_created_writable_for_the_pod_inside_a_private_folder(
    runner, paths, port
) -> None:
    up(make(runner, paths, port))
    data = paths.registry_data_dir(NAME)
    assert stat.S_IMODE(data.stat().st_mode) == 0o777
    assert stat.S_IMODE(paths.env_data_dir(NAME).stat().st_mode) == 0o700


def test_steps_are_reported_on_the_stream(runner, paths, port) -> None:
    stream = io.StringIO()
    make(runner, paths, port).up(UpOptions(timeout=20), Steps(stream))
    lines = stream.getvalue().splitlines()
    assert all(line.startswith(" ✓ ") for line in lines if "✓" in line or "✗" in line)
    assert any("Creating kind cluster 'pdt-kind'" in line for line in lines)
    assert lines[-1].startswith(" ✓ Waiting for the registry at")


# --------------------------------------------------------------------------- idempotence


def test_second_up_reuses_everything_and_makes_no_revision(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.reset_calls()
    result = up(backend)
    assert runner.commands() == reused_unchanged()
    assert not result.changed and result.actions == []
    assert runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["version"] == 1


def test_changed_values_upgrade_the_release(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.reset_calls()
    result = up(backend, set_overrides=("registry.logLevel=debug",))
    assert result.actions == ["deployed-release"]  # the image is in the node already
    release = runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]
    assert release["version"] == 2
    assert release["config"]["registry"]["logLevel"] == "debug"
    runner.reset_calls()
    assert up(backend, set_overrides=("registry.logLevel=debug",)).actions == []


def test_changed_chart_templates_upgrade_the_release(runner, paths, port, tmp_path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    backend = make(runner, paths, port, chart_dir=chart)
    up(backend)
    (chart / "templates" / "NOTES.txt").write_text("changed\n")
    assert "deployed-release" in up(backend).actions


def test_failed_release_is_upgraded_again(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["info"]["status"] = "failed"
    assert "deployed-release" in up(backend).actions


@pytest.mark.parametrize(
    "status, clears", [("pending-upgrade", "rollback"), ("pending-rollback", "rollback"),
                       ("pending-install", "uninstall")],
)  # fmt: skip
def test_a_release_left_pending_by_an_interrupted_run_is_unlocked_then_deployed(
    runner, paths, port, status: str, clears: str
) -> None:
    backend = make(runner, paths, port)
    up(backend)
    release = runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]
    release["info"]["status"] = status
    release["info"]["description"] = "Upgrade in progress"
    runner.calls.clear()
    result = up(backend)
    assert result.actions[-2:] == ["cleared-pending-release", "deployed-release"]
    commands = runner.commands()
    assert commands.index(f"helm {clears} registry") < commands.index("helm upgrade")
    assert runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["info"]["status"] == "deployed"


def test_recreate_deletes_and_rebuilds_the_cluster_keeping_data(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    marker = paths.registry_data_dir(NAME) / "docker" / "marker"
    marker.parent.mkdir(parents=True)
    marker.write_text("blob")
    runner.reset_calls()
    result = up(backend, recreate=True)
    assert result.actions[:2] == ["deleted-cluster", "created-cluster"]
    assert runner.commands()[2:5] == ["kind delete cluster", "docker info", "kind create cluster"]
    assert marker.read_text() == "blob"
    assert runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["version"] == 1


def test_existing_cluster_with_another_port_is_not_silently_rebuilt(runner, paths, port) -> None:
    up(make(runner, paths, port))
    other = make(runner, paths, free_port())
    runner.reset_calls()
    with pytest.raises(OperationFailed, match="created with other settings") as caught:
        up(other)
    assert "--recreate" in (caught.value.hint or "")
    assert "kind delete cluster" not in runner.commands()


def test_stopped_node_is_started(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.state["clusters"][NAME]["running"] = False
    runner.reset_calls()
    result = up(backend)
    assert result.actions == ["started-node"]
    assert "docker container start" in runner.commands()


def test_lost_private_kubeconfig_is_fetched_again(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    backend.kubeconfig_path.unlink()
    runner.reset_calls()
    assert up(backend).actions == []
    assert "kind get kubeconfig" in runner.commands()
    assert backend.kubeconfig_path.is_file()


def test_hosts_toml_edited_by_hand_is_rewritten(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    path = f"/etc/containerd/certs.d/localhost:{port}/hosts.toml"
    runner.state["node_files"][NODE][path] = "# something else\n"
    assert up(backend).actions == ["wrote-hosts-toml"]
    assert runner.state["node_files"][NODE][path] == hosts_toml(port, NODE, DEFAULT_NODE_PORT)


def test_nodes_not_ready_yet_are_polled_until_ready(runner, paths, port) -> None:
    runner.state["nodes_ready_after"] = 3
    up(make(runner, paths, port))
    assert runner.commands().count("kubectl get nodes") == 4


# --------------------------------------------------------------------------- failures


def _fail(runner: FakeToolsRunner, *match: str, **rule: Any) -> None:
    runner.state["fail"].append({"match": list(match), "times": -1, **rule})


@pytest.mark.parametrize(
    ("match", "stderr", "step"),
    [
        (("kind", "get", "nodes"), "boom", None),
        (("docker", "exec", "-i"), "OCI runtime exec failed", "Pointing containerd"),
        (("kubectl", "apply"), "Error from server (Forbidden)", "Publishing kube-public"),
        (("helm", "version"), "segmentation fault", "Reading release 'registry'"),
        (("helm", "history"), "Error: Kubernetes cluster unreachable", "Reading release"),
        (("kind", "load"), "ERROR: failed to load image", "Registry image registry:3.1.2"),
    ],
)
def test_a_failing_step_is_named_and_stops_up(runner, paths, port, match, stderr, step) -> None:
    _fail(runner, *match, stderr=stderr)
    stream = io.StringIO()
    with pytest.raises(OperationFailed) as caught:
        make(runner, paths, port).up(UpOptions(timeout=5), Steps(stream))
    assert stderr in str(caught.value)
    assert caught.value.exit_code == 1
    if step is not None:
        failed = [line for line in stream.getvalue().splitlines() if "✗" in line]
        assert len(failed) == 1 and step in failed[0]
        assert step in caught.value.message
        assert caught.value.hint


def test_a_broken_user_kubeconfig_only_warns(runner, paths, port) -> None:
    _fail(runner, "kubectl", "config", "set-cluster", stderr="error: open ~/.kube/config: denied")
    stream = io.StringIO()
    result = make(runner, paths, port).up(UpOptions(timeout=20), Steps(stream))
    assert "deployed-release" in result.actions and "published-context" not in result.actions
    text = stream.getvalue()
    assert " ✗ Adding context kind-pdt-kind to your kubeconfig" in text
    assert "denied" in text and f"--context {CONTEXT}`." in text


def test_unchanged_release_whose_rollout_is_stuck_fails_naming_the_wait(
    runner, paths, port
) -> None:
    backend = make(runner, paths, port)
    up(backend)
    _fail(runner, "kubectl", "rollout", stderr="error: timed out waiting for the condition")
    stream = io.StringIO()
    with pytest.raises(OperationFailed, match="Waiting for the registry rollout failed"):
        backend.up(UpOptions(timeout=5), Steps(stream))
    assert " ✗ Waiting for the registry rollout" in stream.getvalue()


def test_status_when_docker_is_down_reports_the_error(runner, paths, port) -> None:
    runner.state["docker"] = "down"
    _fail(runner, "kind", "get", "clusters", stderr="ERROR: failed to list clusters")
    report = make(runner, paths, port).status().report
    assert report["exists"] is False and "failed to list clusters" in report["error"]


def test_api_server_that_never_answers_times_out_naming_the_wait(runner, paths, port) -> None:
    _fail(runner, "kubectl", "get", "nodes", stderr="Unable to connect to the server")
    stream = io.StringIO()
    backend = make(runner, paths, port)
    backend.poll_interval = 0.01
    with pytest.raises(ReadinessTimeout, match="Unable to connect to the server"):
        backend.up(UpOptions(timeout=3.0), Steps(stream))
    assert " ✗ Waiting for 1 node to be Ready" in stream.getvalue()


def test_docker_daemon_down_is_a_prerequisite_error(runner, paths, port) -> None:
    runner.state["docker"] = "down"
    with pytest.raises(DaemonUnavailable):
        up(make(runner, paths, port))
    assert runner.commands() == ["docker version"]


def test_failed_cluster_creation_cleans_up_and_says_why(runner, paths, port) -> None:
    _fail(
        runner,
        "kind",
        "create",
        stderr='ERROR: failed to create cluster: failed to pull image "kindest/node:v1"',
    )
    with pytest.raises(OperationFailed, match="Creating the kind cluster failed") as caught:
        up(make(runner, paths, port))
    assert "cannot be pulled" in (caught.value.hint or "")
    assert runner.commands()[-1] == "kind delete cluster"


def test_cluster_creation_past_the_deadline_deletes_the_half_made_cluster(
    runner, paths, port
) -> None:
    _fail(runner, "kind", "create", timeout=True)
    with pytest.raises(ReadinessTimeout, match="half-made cluster was deleted"):
        up(make(runner, paths, port))
    assert runner.commands()[-1] == "kind delete cluster"


def test_helm_upgrade_failure_is_classified(runner, paths, port) -> None:
    _fail(
        runner,
        "helm",
        "upgrade",
        stderr="Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
    )
    with pytest.raises(OperationFailed, match="locked by an earlier operation") as caught:
        up(make(runner, paths, port))
    assert "helm rollback registry -n pallet" in (caught.value.hint or "")


def test_nodes_that_never_get_ready_time_out(runner, paths, port) -> None:
    runner.state["nodes_ready_after"] = 10**9
    backend = make(runner, paths, port)
    backend.poll_interval = 0.01
    with pytest.raises(ReadinessTimeout, match="not Ready: pdt-kind-control-plane"):
        up(backend, timeout=3.0)


class ReadyAfterTheOtherSteps(FakeToolsRunner):
    """Nodes turn Ready only once the given commands have all run."""

    awaited: tuple[str, ...] = ()

    def run(self, argv: Sequence[str], **kwargs: Any) -> Any:
        seen = set(self.commands())
        if all(any(c.startswith(w) for c in seen) for w in self.awaited):
            self.state["nodes_ready_after"] = 0
        return super().run(argv, **kwargs)


@pytest.fixture
def late_nodes() -> Iterator[ReadyAfterTheOtherSteps]:
    fake = ReadyAfterTheOtherSteps()
    fake.state["nodes_ready_after"] = 10**9
    yield fake
    fake.close()


def test_the_steps_up_to_the_chart_run_while_the_node_turns_ready(late_nodes, paths, port) -> None:
    """On a new cluster nothing before Helm's own wait waits for Ready nodes: the node
    turns Ready here only once the independent steps and `helm upgrade` have run, so a
    wait before any of them would time out."""
    late_nodes.awaited = ("kubectl apply", "helm history registry", "kind load", "helm upgrade")
    backend = make(late_nodes, paths, port)
    backend.poll_interval = 0.01
    backend.max_parallel = 5
    stream = io.StringIO()
    result = backend.up(UpOptions(timeout=10.0), Steps(stream))
    assert result.changed and "deployed-release" in result.actions
    lines = stream.getvalue().splitlines()
    ready = next(i for i, line in enumerate(lines) if "Waiting for 1 node to be Ready" in line)
    assert lines[ready].startswith(" ✓") and "Installing chart" in lines[ready + 1]


def test_a_helm_failure_while_the_node_turns_ready_is_helms(late_nodes, paths, port) -> None:
    """Helm failing at once (not at the deadline) says Helm's reason, not the nodes'."""
    _fail(late_nodes, "helm", "upgrade", stderr="Error: chart requires kubeVersion >= 9")
    backend = make(late_nodes, paths, port)
    backend.poll_interval = 0.01
    stream = io.StringIO()
    with pytest.raises(OperationFailed, match="kubeVersion"):
        backend.up(UpOptions(timeout=10.0), Steps(stream))
    assert "✗ Waiting for 1 node" not in stream.getvalue()


def test_registry_that_never_answers_times_out_with_a_hint(runner, paths, port) -> None:
    runner.serve_registry = False
    with pytest.raises(ReadinessTimeout) as caught:
        up(make(runner, paths, port), timeout=3.0)
    assert f"{port}/v2/" in caught.value.message
    assert f"--context {CONTEXT}" in (caught.value.hint or "")


def test_port_held_by_something_else_fails_before_creating_anything(runner, paths) -> None:
    with registry_server() as url:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(PortInUse):
            up(make(runner, paths, port))
    assert "kind create cluster" not in runner.commands()
    assert runner.state["clusters"] == {}


def test_invalid_values_fail_before_any_command(runner, paths, port) -> None:
    with pytest.raises(ConfigError, match="service.nodePort"):
        up(make(runner, paths, port), set_overrides=("service.nodePort=80",))
    assert runner.calls == []


def test_cluster_ip_service_is_refused_for_the_kind_backend(runner, paths, port) -> None:
    with pytest.raises(ConfigError, match="NodePort"):
        up(make(runner, paths, port), set_overrides=("service.type=ClusterIP",))


def test_every_subprocess_timeout_stays_within_the_deadline(runner, paths, port) -> None:
    up(make(runner, paths, port), timeout=7)
    # helm upgrade may roll back past its own --timeout; rollout status gets a margin
    assert max(runner.timeouts) <= 7 + 30
    limits = {"upgrade": 7 + 30, "rollout": 7 + 10}
    for argv, timeout in zip(runner.calls, runner.timeouts):
        word = "upgrade" if "upgrade" in argv else "rollout" if "rollout" in argv else ""
        assert timeout <= limits.get(word, 7), argv


def test_values_override_order_user_wins_over_pallet_dev_layer(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend, set_overrides=("persistence.hostPath.path=/srv/registry",))
    node = yaml.safe_load(backend.kind_config_path.read_text())["nodes"][0]
    assert node["extraMounts"][0]["containerPath"] == "/srv/registry"


# --------------------------------------------------------------------------- down / status


def test_down_deletes_the_cluster_keeps_data_and_cleans_the_users_kubeconfig(
    runner, paths, port
) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.reset_calls()
    result = backend.down(clean=False, steps=quiet())
    assert runner.commands() == ["kind get clusters", "kind delete cluster"]
    assert call(runner, "kind", "delete") == ["kind", "delete", "cluster", "--name", NAME]
    assert result.removed == [f"kind cluster {NAME}"] and result.changed
    assert paths.registry_data_dir(NAME).is_dir()
    assert CONTEXT not in runner.state["user_kubeconfig"]["contexts"]
    assert runner.state["user_kubeconfig"]["current-context"] == "prod"
    assert not backend.kubeconfig_path.exists()


def test_down_when_nothing_exists_succeeds_and_changes_nothing(runner, paths, port) -> None:
    result = make(runner, paths, port).down(clean=True, steps=quiet())
    assert not result.changed
    assert runner.commands() == ["kind get clusters"]


def test_up_down_up_serves_the_same_data_folder(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    (paths.registry_data_dir(NAME) / "blob").write_text("kept")
    backend.down(clean=False, steps=quiet())
    result = up(backend)
    assert "created-cluster" in result.actions and "deployed-release" in result.actions
    assert (paths.registry_data_dir(NAME) / "blob").read_text() == "kept"


def test_status_without_a_cluster(runner, paths, port) -> None:
    report = make(runner, paths, port).status().report
    assert list(report)[0] == "exists" and report["exists"] is False
    assert report["release"] is None and report["data_dir"]["exists"] is False


def test_status_reports_nodes_release_pod_pvc_and_endpoint(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.reset_calls()
    report = backend.status().report
    assert list(report)[0] == "exists" and report["exists"] is True
    assert report["cluster"]["nodes"] == [{"name": NODE, "ready": True}]
    assert report["cluster"]["nodes_ready"] is True
    assert report["release"]["revision"] == 1 and report["release"]["status"] == "deployed"
    assert report["release"]["chart"].startswith("pallet-registry-")
    assert report["release"]["managed_by_pallet_dev"] is True
    assert (
        report["release"]["chart_version"]
        == yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    )
    assert report["registry_pod"]["phase"] == "Running" and report["registry_pod"]["ready"]
    assert report["pvc"]["bound"] is True
    assert report["endpoint"] == f"http://127.0.0.1:{port}"
    json.dumps(report)  # JSON-ready
    for argv in runner.calls:
        if argv[:2] == ["kubectl", "--kubeconfig"]:
            assert argv[-2:] == ["-o", "json"] or "config" in argv


def test_status_records_a_failing_query_instead_of_failing(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    _fail(runner, "helm", "history", stderr="Error: kubernetes cluster unreachable")
    report = backend.status().report
    assert report["exists"] is True
    assert "unreachable" in report["release"]["error"]
    assert report["registry_pod"]["phase"] == "Running"


# --------------------------------------------------------------------------- plan


def test_plan_runs_nothing_and_shows_the_kind_config(runner, paths, port) -> None:
    plan = make(runner, paths, port).plan_up(UpOptions(timeout=30)).to_dict()
    assert runner.calls == []
    assert not paths.registry_data_dir(NAME).exists()
    assert plan["backend"] == "kind"
    assert plan["kind_config"]["nodes"][0]["extraPortMappings"][0]["hostPort"] == port
    argvs = [step["argv"] for step in plan["steps"] if step["argv"]]
    assert ["kind", "get", "clusters"] in argvs
    assert any(argv[:3] == ["kind", "create", "cluster"] for argv in argvs)
    assert any(argv[:3] == ["kind", "load", "docker-image"] for argv in argvs)
    assert all(
        "--context" in argv for argv in argvs if argv[0] == "kubectl" and argv[1] != "config"
    )


def test_configured_node_image_is_used(runner, paths, port) -> None:
    image = "kindest/node:v1.34.0@sha256:" + "a" * 64
    backend = make(runner, paths, port, node_image=image)
    assert backend.plan_up(UpOptions()).kind_config["nodes"][0]["image"] == image


# --------------------------------------------------------------------------- helpers


def test_chart_dir_comes_from_the_environment_or_the_checkout(tmp_path) -> None:
    assert find_chart_dir({}) == CHART
    (tmp_path / "Chart.yaml").write_text("name: x\n")
    assert find_chart_dir({CHART_DIR_ENV: str(tmp_path)}) == tmp_path.resolve()
    with pytest.raises(ConfigError, match="no Chart.yaml"):
        find_chart_dir({CHART_DIR_ENV: str(tmp_path / "missing")})


def test_chart_fullname_mirrors_the_chart_helper() -> None:
    assert chart_fullname({}) == "registry-pallet-registry"
    assert chart_fullname({"fullnameOverride": "reg"}) == "reg"
    assert chart_fullname({"nameOverride": "registry"}) == "registry"


def test_pallet_dev_layer_runs_the_pod_as_the_user(monkeypatch) -> None:
    monkeypatch.setattr("os.getuid", lambda: 1234)
    monkeypatch.setattr("os.getgid", lambda: 567)
    layer = pallet_dev_values(from_config(Config()))
    assert layer["persistence"]["hostPath"] == {"enabled": True}
    assert layer["podSecurityContext"] == {"runAsUser": 1234, "runAsGroup": 567, "fsGroup": 567}
    monkeypatch.setattr("os.getuid", lambda: 0)
    assert "podSecurityContext" not in pallet_dev_values(from_config(Config()))


# --- preflight (pallet_dev.preflight): before anything is created ------------------------


def test_kind_up_on_cgroup_v1_stops_before_anything_is_created(
    runner: FakeToolsRunner, paths: Paths, port: int
) -> None:
    runner.state["docker_info"] = {"cgroup": "1"}
    backend = make(runner, paths, port, node_image=versions.KIND_NODE_IMAGES[(0, 33)])
    with pytest.raises(PrerequisiteError, match="cgroup v1") as caught:
        up(backend)
    assert versions.KIND_NODE_IMAGES[(0, 30)] in str(caught.value.hint)
    assert runner.commands() == ["docker version", "kind get clusters", "docker info"]
    assert NAME not in runner.state["clusters"]
    assert not paths.registry_data_dir(NAME).exists()

    # a 1.34 image on the same host goes ahead
    up(make(runner, paths, port, node_image=versions.KIND_NODE_IMAGES[(0, 30)]))
    assert NAME in runner.state["clusters"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry:3.1.2", {"repository": "registry", "tag": "3.1.2"}),
        ("pallet-dev-local/registry:3.1.2", {"repository": "pallet-dev-local/registry",
                                             "tag": "3.1.2"}),  # fmt: skip
        ("localhost:5001/registry", {"repository": "localhost:5001/registry", "tag": "latest"}),
        # kind loads by tag (kind#2394): the digest is not passed on
        ("registry:3.1.2@sha256:" + "a" * 64, {"repository": "registry", "tag": "3.1.2"}),
    ],
)
def test_the_kind_chart_runs_the_configured_registry_image(
    runner: FakeToolsRunner, paths: Paths, port: int, image: str, expected: dict[str, str]
) -> None:
    """`registry.image` is the image on both backends (the chart's default is only a default)."""
    assert image_values(image) == expected
    config = from_config(Config(name=NAME, registry=RegistrySettings(port=port, image=image)))
    assert pallet_dev_values(config)["image"] == expected
    backend = KindBackend(config, runner, paths)
    ref = backend.chart_inputs(UpOptions(timeout=20)).image
    if "digest" in expected:
        assert ref == f"{expected['repository']}@{expected['digest']}"
    else:
        assert ref == f"{expected['repository']}:{expected['tag']}"


# --- gc: the registry Deployment scaled to 0 while the collection runs -------------------
def test_gc_plan_scales_to_zero_and_collects_on_the_host_data_folder(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    steps = backend.plan_collect_garbage(delete_untagged=True)
    assert runner.calls == []  # a plan runs nothing
    scale = steps[0].argv
    assert scale[:5] == [
        "kubectl",
        "--kubeconfig",
        str(backend.kubeconfig_path),
        "--context",
        CONTEXT,
    ]
    assert scale[5:] == ["scale", "--namespace", NAMESPACE, "deployment/registry-pallet-registry",
                         "--replicas=0"]  # fmt: skip
    gc = steps[2].argv
    assert f"type=bind,src={backend.data_dir.absolute()},dst=/var/lib/registry" in gc
    assert gc[-3:] == ["garbage-collect", "/etc/distribution/config.yml", "--delete-untagged"]


def test_gc_runs_while_no_registry_pod_runs_and_scales_back(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.reset_calls()
    stream = io.StringIO()
    result = backend.collect_garbage(delete_untagged=False, steps=Steps(stream), timeout=60)
    assert runner.commands() == [
        "kind get clusters",
        "kubectl get deployments",
        "kubectl scale",
        "kubectl wait",
        "docker run",
        "kubectl scale",
        "kubectl rollout status",
    ]
    run = runner.state["gc_runs"][-1]
    assert run["registry_replicas"] == [0] and "--delete-untagged" not in run["args"]
    assert runner.calls[-2][-1] == "--replicas=1"
    assert "scaled to 0" in result.method and str(backend.data_dir) in result.method
    assert result.summary.endswith("eligible for deletion")
    assert " ✓ Scaling the registry Deployment back to 1" in stream.getvalue()
    assert backend.registry_data_size() is not None


def test_gc_scales_back_even_when_the_collection_fails(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    runner.state["host_images"].remove("registry:3.1.2")
    with pytest.raises(OperationFailed, match="not in this host's Docker"):
        backend.collect_garbage(delete_untagged=True, steps=quiet(), timeout=60)
    assert runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["_replicas"] == 1


def test_gc_on_an_empty_data_folder_has_nothing_to_collect(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    # an upload that never finished: repositories/ exists, blobs/ does not (exit 1)
    stderr = "failed to garbage collect: error enumerating blobs: filesystem: Path not found: "
    runner.state["fail"].append(
        {"match": ["docker", "run", "--rm"], "stderr": stderr + "/docker/registry/v2/blobs"}
    )
    result = backend.collect_garbage(delete_untagged=True, steps=quiet(), timeout=60)
    assert result.summary == "nothing to collect: the registry holds no image yet"
    assert runner.state["releases"][f"{NAMESPACE}/{RELEASE}"]["_replicas"] == 1


def test_gc_refuses_data_outside_the_host_folder(runner, paths, port) -> None:
    backend = make(runner, paths, port)
    up(backend)
    deployed = json.loads(backend.values_path.read_text())
    deployed["persistence"]["hostPath"]["enabled"] = False  # as `up --set ...` would leave it
    backend.values_path.write_text(json.dumps(deployed))
    with pytest.raises(OperationFailed, match="not in the host data folder"):
        backend.plan_collect_garbage(delete_untagged=True)


def test_an_interrupted_cluster_creation_deletes_the_half_made_cluster(
    runner, paths, port, monkeypatch
) -> None:
    """Ctrl-C or SIGTERM while kind creates: the next `up` would take the half-made
    cluster for a whole one."""
    real = runner.run

    def interrupted_in_create(argv: Any, **kwargs: Any) -> Any:
        result = real(argv, **kwargs)
        if list(argv[:2]) == ["kind", "create"]:
            raise KeyboardInterrupt  # the node exists; kind was stopped
        return result

    monkeypatch.setattr(runner, "run", interrupted_in_create)
    with pytest.raises(KeyboardInterrupt):
        up(make(runner, paths, port))
    assert runner.commands()[-1] == "kind delete cluster"
    assert not runner.state["clusters"]
