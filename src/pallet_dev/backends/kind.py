"""The kind backend: the pallet-registry chart in a local kind cluster.

`up` converges, step by step (each a ✓ line on stderr), and re-runs cheaply:

1. check Docker; find the cluster (`kind get clusters`, names matched exactly);
   ``--recreate`` deletes it first (registry data lives on the host and stays);
2. create it when missing from the kind config pallet-dev generates
   (:class:`~pallet_dev.tools.kind.KindClusterConfig`: the chart's fixed nodePort
   published on ``127.0.0.1:<port>``, the host data folder bind-mounted into the
   node, the node image pinned, containerd's per-host registry config on); an
   existing cluster is reused after checking its port and mount still match;
3. wait until every node is Ready (kind's own ``--wait`` exits 0 on timeout);
4. at once (they touch different things): write containerd's
   ``certs.d/localhost:<port>/hosts.toml`` on every node (see :func:`hosts_toml`
   for the route and why); add the ``kind-<name>`` context to the user's
   kubeconfig without changing its current context (see
   :meth:`KindBackend._publish_context`); apply the KEP-1755 ConfigMap
   ``kube-public/local-registry-hosting``; read the Helm major and the release's
   latest revision; copy the registry image from the host's Docker into nodes
   that lack it (`kind load docker-image`), so nothing is pulled that the host has;
5. deploy the chart as release ``registry`` in namespace ``pallet`` with
   ``helm upgrade --install`` (Helm waits for the rollout) -- skipped when the
   deployed revision has the same chart and values (no new revision; then the
   rollout is checked with kubectl);
6. wait for ``GET /v2/`` on ``localhost:<port>``.

Every step is bounded by the one ``--timeout`` deadline: each subprocess gets the
smaller of the time left and its own cap.

Kubeconfig: pallet-dev keeps the cluster's kubeconfig in its own state folder
(``kind create cluster --kubeconfig <state>/<name>.kubeconfig``) and passes it,
with ``--context kind-<name>``, to every kubectl and helm call. kind makes the new
context current only in that private file, so the user's current-context never
changes; the context is then added to the user's kubeconfig with `kubectl config
set-*` (which never touches current-context), so ``--context kind-<name>`` works
for them too. `down` uses `kind delete cluster` without ``--kubeconfig``, which
removes the entries from the user's kubeconfig again.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pallet_dev.agents.spec import AgentDeployment, AgentsState
from pallet_dev.backends.base import Backend, DownResult, Plan, PlanStep, UpOptions, UpResult
from pallet_dev.backends.kind_agents import KindAgents
from pallet_dev.chart.release import (
    DESCRIPTION_PREFIX,
    PLAN_HELM_VERSION,
    chart_fingerprint,
    description_for,
    same_release,
)
from pallet_dev.config import Config
from pallet_dev.config_sources import registry_push_host
from pallet_dev.errors import (
    CommandFailed,
    CommandTimeout,
    ConfigError,
    OperationFailed,
    PalletError,
    ReadinessTimeout,
)
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.ports import ensure_port_free, port_conflict_hint
from pallet_dev.runner import Runner
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.helm import Helm, HelmRevision, HelmVersion
from pallet_dev.tools.kind import (
    CONTAINERD_CERTS_DIR,
    Kind,
    KindClusterConfig,
    NodeFiles,
    NodeImages,
    control_plane_node,
)
from pallet_dev.tools.kubectl import Kubectl, KubeconfigEntry, UserKubeconfig, entry_from_kubeconfig

RELEASE = "registry"
NAMESPACE = "pallet"
CHART_NAME = "pallet-registry"
# the registry's own objects (the `helm test` pod has component=test)
RELEASE_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=registry"
CHART_DIR_ENV = "PALLET_DEV_CHART_DIR"
# KEP-1755: how tools (Tilt, Skaffold, ctlptl) discover a cluster's local registry.
LOCAL_REGISTRY_HOSTING_NAMESPACE = "kube-public"
LOCAL_REGISTRY_HOSTING_NAME = "local-registry-hosting"
LOCAL_REGISTRY_HOSTING_KEY = "localRegistryHosting.v1"
LOCAL_REGISTRY_HOSTING_HELP = "https://kind.sigs.k8s.io/docs/user/local-registry/"

# caps on single subprocesses (each also bounded by the time left)
CAP_QUICK = 30.0
CAP_CREATE = 600.0
CAP_DELETE = 180.0
CAP_LOAD = 300.0

T = TypeVar("T")


def find_chart_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The pallet-registry chart folder.

    ``PALLET_DEV_CHART_DIR`` wins. Otherwise the chart shipped inside the package
    (``pallet_dev/charts/pallet-registry``, where a wheel would carry it as package
    data), then the repository checkout (``<repo>/charts/pallet-registry`` next to
    ``src/``, which an editable install finds).
    """
    environ = os.environ if environ is None else environ
    override = environ.get(CHART_DIR_ENV)
    if override:
        path = Path(override).expanduser()
        if (path / "Chart.yaml").is_file():
            return path.resolve()
        raise ConfigError(
            f"{CHART_DIR_ENV}={override}: there is no Chart.yaml in that folder.",
            hint=f"Point {CHART_DIR_ENV} at the chart folder (charts/{CHART_NAME} in a checkout).",
        )
    package = Path(__file__).resolve().parents[1]
    for candidate in (
        package / "charts" / CHART_NAME,
        package.parents[1] / "charts" / CHART_NAME,
    ):
        if (candidate / "Chart.yaml").is_file():
            return candidate
    raise ConfigError(
        f"Cannot find the {CHART_NAME} Helm chart next to the pallet-dev package.",
        hint=f"Set {CHART_DIR_ENV} to the chart folder (charts/{CHART_NAME} in a checkout).",
    )


@dataclass(frozen=True)
class ChartInputs:
    """What the kind backend needs from the chart and its computed values."""

    chart_dir: Path
    chart_version: str
    values: dict[str, Any]  # the complete computed values, passed as one values file
    image: str  # the registry image the pod runs (loaded into the node when present)
    node_port: int  # the Service's fixed nodePort (kind publishes it on the host port)
    service_host: str  # <service>.<namespace>.svc.cluster.local:<port>, for pods
    node_data_dir: str  # the hostPath inside the node holding registry data

    @cached_property
    def fingerprint(self) -> str:
        """Chart files + values: equal fingerprints mean `helm upgrade` would change nothing."""
        return chart_fingerprint(self.chart_dir, self.values)

    @property
    def description(self) -> str:
        return description_for(self.fingerprint)


def pallet_dev_values(config: Config) -> dict[str, Any]:
    """The layer pallet-dev adds between the chart's dev values and the user's values.

    Registry data goes to the hostPath volume the kind config bind-mounts from the
    host. The pod runs as the invoking user's uid/gid (not root), so what the
    registry writes into the host folder belongs to that user and `down --clean`
    can delete it; as root the chart's own ids stay. The user's ``--values`` files
    and ``--set`` still win over this layer.
    """
    layer: dict[str, Any] = {
        "persistence": {"enabled": True, "hostPath": {"enabled": True}},
        "image": image_values(config.registry.image),
    }
    uid = os.getuid() if hasattr(os, "getuid") else 0
    gid = os.getgid() if hasattr(os, "getgid") else 0
    if uid > 0 and gid > 0:
        layer["podSecurityContext"] = {"runAsUser": uid, "runAsGroup": gid, "fsGroup": gid}
    return layer


def image_values(image: str) -> dict[str, str]:
    """`registry.image` as the chart's image.repository / tag (both backends run it).

    ``name``, ``name:tag``; a registry host with a port (``localhost:5001/registry``) is
    part of the name. A digest (``name:tag@sha256:...``) is not passed on: the kind
    backend copies the image into the nodes with `kind load`, which cannot load or match
    by digest (kind#2394), so a digest-pinned pod would pull instead. The tag is used.
    """
    name = image.partition("@")[0]
    repository, tag = name, "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
    return {"repository": repository, "tag": tag}


def chart_fullname(values: Mapping[str, Any], release: str = RELEASE) -> str:
    """The chart's `pallet-registry.fullname` helper, for the Service's DNS name."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:63].rstrip("-")
    name = str(values.get("nameOverride") or CHART_NAME)
    if name in release:
        return release[:63].rstrip("-")
    return f"{release}-{name}"[:63].rstrip("-")


def load_chart_inputs(config: Config, options: UpOptions, chart_dir: Path) -> ChartInputs:
    """Compute and validate the chart values (ConfigError before anything is created).

    Layers, lowest first: the chart's values.yaml and values-dev.yaml, pallet-dev's
    own layer (:func:`pallet_dev_values`), the user's ``--values`` files (config
    ``chart.values`` first), then ``--set`` overrides. Helm gets the complete
    result as one values file, so the deployed release's values can be compared
    with it.
    """
    import tempfile

    import yaml

    from pallet_dev.chart import loader as chart_values

    with tempfile.TemporaryDirectory(prefix="pallet-dev-values-") as tmp:
        layer = Path(tmp) / "pallet-dev-kind-backend.yaml"
        layer.write_text(yaml.safe_dump(pallet_dev_values(config)), encoding="utf-8")
        loaded = chart_values.load_values(
            chart_dir,
            values_files=[layer, *(Path(path) for path in options.values_files)],
            set_overrides=options.set_overrides,
            include_dev=True,
        )
    if loaded.service.type != "NodePort":
        raise ConfigError(
            f"service.type is {loaded.service.type}, but the kind backend reaches the registry "
            "through its NodePort.",
            hint="Leave service.type at NodePort (remove the override).",
        )
    values = loaded.model_dump(by_alias=True, mode="json", exclude_none=True)
    try:
        chart_meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
        chart_version = str(chart_meta["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"{chart_dir / 'Chart.yaml'}: cannot read the chart version ({exc}).")
    host_path = loaded.persistence.host_path
    service = chart_fullname(values)
    return ChartInputs(
        chart_dir=chart_dir,
        chart_version=chart_version,
        values=values,
        image=loaded.image_ref,
        node_port=loaded.service.node_port,
        service_host=f"{service}.{NAMESPACE}.svc.cluster.local:{loaded.service.port}",
        node_data_dir=host_path.path.rstrip("/") or "/",
    )


def hosts_toml(port: int, node: str, node_port: int) -> str:
    """containerd's per-host config so pods can use images named ``localhost:<port>/...``.

    Route: the registry's NodePort on the node's own name. Inside a kind node the
    container name is its hostname and resolves (``/etc/hosts``, Docker's DNS) to
    the node's address on the kind network, and a NodePort answers on every node
    address whatever kube-proxy's mode (iptables, ipvs, nftables); the name also
    survives the address changing when Docker restarts the node. Rejected:
    ``127.0.0.1:<nodePort>`` (answers only in iptables mode with route_localnet),
    the Service's DNS name (containerd on the node does not use cluster DNS), its
    ClusterIP (changes whenever the Service is recreated). Plain HTTP is written
    explicitly: with config_path on, containerd's implicit "localhost is HTTP" rule
    does not apply to a mirror host.
    """
    return (
        f"# Written by pallet-dev: pulls of localhost:{port}/... go to the registry's\n"
        f"# NodePort {node_port} on this node (its own name resolves to its own address).\n"
        f'[host."http://{node}:{node_port}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )


def hosts_toml_path(port: int) -> str:
    return f"{CONTAINERD_CERTS_DIR}/localhost:{port}/hosts.toml"


def registry_host(config: Config) -> str:
    """Where tools on this machine push: ``localhost:<port>`` unless bound elsewhere."""
    return registry_push_host(config.registry.bind_address, config.registry.port)


def local_registry_hosting(config: Config, service_host: str) -> dict[str, Any]:
    """The KEP-1755 ConfigMap, so Tilt and Skaffold find the registry by themselves."""
    import yaml

    document = {
        "host": registry_host(config),
        "hostFromContainerRuntime": f"localhost:{config.registry.port}",
        "hostFromClusterNetwork": service_host,
        "help": LOCAL_REGISTRY_HOSTING_HELP,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": LOCAL_REGISTRY_HOSTING_NAME,
            "namespace": LOCAL_REGISTRY_HOSTING_NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "pallet-dev"},
        },
        "data": {LOCAL_REGISTRY_HOSTING_KEY: yaml.safe_dump(document, sort_keys=False)},
    }


def release_unchanged(latest: HelmRevision | None, chart: ChartInputs) -> bool:
    """The deployed release already runs this chart with these values (chart.release)."""
    return same_release(latest, f"{CHART_NAME}-{chart.chart_version}", chart.description)


class KindBackend(Backend):
    name = "kind"
    uses_chart = True
    # seconds between polls of node readiness (tests set 0)
    poll_interval = 1.0
    # independent steps run at once (tests set 1 for a fixed command order)
    max_parallel = 4

    def __init__(
        self,
        config: Config,
        runner: Runner,
        paths: Paths,
        *,
        chart_dir: Path | None = None,
        helm_binary: str = "helm",
    ) -> None:
        super().__init__(config, runner, paths)
        self.config: Config = config  # the kind backend reads all of it (kind, chart)
        self._chart_dir = chart_dir
        self.helm_binary = helm_binary
        self._chart: ChartInputs | None = None  # the registry chart inputs `up` used

    # --- names and files -------------------------------------------------------------
    @property
    def cluster(self) -> str:
        return self.config.name

    @property
    def context(self) -> str:
        return self.config.kube_context

    @property
    def kubeconfig_path(self) -> Path:
        return self.paths.state_dir / f"{self.cluster}.kubeconfig"

    @property
    def kind_config_path(self) -> Path:
        return self.paths.state_dir / f"{self.cluster}-kind-config.yaml"

    @property
    def values_path(self) -> Path:
        return self.paths.state_dir / f"{self.cluster}-values.json"

    @property
    def certs_dir(self) -> Path:
        """Short-lived copies of the kind context's certificates for `kubectl config`."""
        return self.paths.state_dir / f"{self.cluster}-kubeconfig-certs"

    @property
    def data_dir(self) -> Path:
        return self.paths.registry_data_dir(self.cluster)

    @property
    def chart_dir(self) -> Path:
        if self._chart_dir is None:
            self._chart_dir = find_chart_dir()
        return self._chart_dir

    def chart_inputs(self, options: UpOptions) -> ChartInputs:
        self._chart = load_chart_inputs(self.config, options, self.chart_dir)
        return self._chart

    # --- agents ----------------------------------------------------------------------
    @property
    def agents(self) -> KindAgents:
        return KindAgents(self)

    @property
    def agent_registry_address(self) -> str:
        """The registry Service's DNS name and port: what pods use to reach it."""
        chart = self._chart or self.chart_inputs(UpOptions())
        return chart.service_host

    def plan_agents(self, deployments: list[AgentDeployment], options: UpOptions) -> list[PlanStep]:
        return self.agents.plan(deployments, options)

    def deploy_agents(
        self, deployments: list[AgentDeployment], deadline: float, steps: Steps
    ) -> AgentsState:
        return self.agents.deploy(deployments, deadline, steps)

    def roll_out_images(
        self,
        deployments: list[AgentDeployment],
        changed: list[str],
        deadline: float,
        steps: Steps,
    ) -> AgentsState:
        return self.agents.roll_out_images(deployments, changed, deadline, steps)

    def agents_status(self) -> list[dict[str, Any]]:
        return self.agents.status()

    def agent_logs_argv(self, agent: str, *, follow: bool, tail: int | None) -> list[str]:
        return self.agents.logs_argv(agent, follow=follow, tail=tail)

    def kind_cluster_config(self, chart: ChartInputs) -> KindClusterConfig:
        return KindClusterConfig(
            name=self.cluster,
            node_image=self.config.kind.node_image,
            node_port=chart.node_port,
            host_port=self.config.registry.port,
            listen_address=self.config.registry.bind_address,
            host_data_dir=str(self.data_dir.absolute()),
            node_data_dir=chart.node_data_dir,
        )

    # --- tool adapters ---------------------------------------------------------------
    def kind(self) -> Kind:
        return Kind(self.runner)

    def kubectl(self) -> Kubectl:
        return Kubectl(self.runner, context=self.context, kubeconfig=str(self.kubeconfig_path))

    def helm(self) -> Helm:
        return Helm(
            self.runner,
            kube_context=self.context,
            kubeconfig=str(self.kubeconfig_path),
            binary=self.helm_binary,
        )

    # --- plan ------------------------------------------------------------------------
    def plan_up(self, options: UpOptions) -> Plan:
        chart = self.chart_inputs(options)
        kind_config = self.kind_cluster_config(chart)
        kind, kubectl, helm = self.kind(), self.kubectl(), self.helm()
        node = control_plane_node(self.cluster)
        port = self.config.registry.port
        user = UserKubeconfig(self.runner)
        ca, cert, key = (str(p) for p in self._cert_files())
        upgrade = helm.upgrade_install_argv(
            RELEASE,
            str(chart.chart_dir),
            NAMESPACE,
            values_files=[str(self.values_path)],
            timeout=options.timeout,
            description=chart.description,
            version=PLAN_HELM_VERSION,
        )
        steps = [
            PlanStep(
                "Check the Docker daemon",
                ["docker", "version", "--format", "{{json .Server.Version}}"],
            ),
            PlanStep("Look for the kind cluster (exact name match)", kind.get_clusters_argv()),
            PlanStep(
                "Delete the cluster (only with --recreate; registry data is kept)",
                kind.delete_cluster_argv(self.cluster),
            ),
            PlanStep(
                "Create the host data folder (bind-mounted into the node; kept by `down`)",
                [],
                detail=str(self.data_dir),
            ),
            PlanStep(
                "Write the kind config (kind_config below)", [], detail=str(self.kind_config_path)
            ),
            PlanStep(
                "Create the cluster (only when missing)",
                kind.create_cluster_argv(
                    self.cluster, str(self.kind_config_path), str(self.kubeconfig_path)
                ),
            ),
            PlanStep("List the nodes", kind.get_nodes_argv(self.cluster)),
            PlanStep(
                "Wait until every node is Ready",
                kubectl.get_nodes_argv(),
                detail=f"polled until all Ready, at most {options.timeout:g} s in all",
            ),
            PlanStep(
                f"Point containerd on each node at the registry for localhost:{port}",
                NodeFiles(self.runner).write_argv(node, hosts_toml_path(port)),
                detail=hosts_toml(port, node, chart.node_port),
            ),
            PlanStep(
                f"Add cluster {self.context} to your kubeconfig (only when it differs)",
                user.set_cluster_argv(self.context, "https://127.0.0.1:<api-port>", ca),
                detail="the API server address and certificates come from the kubeconfig kind "
                f"wrote to {self.kubeconfig_path}",
            ),
            PlanStep(
                f"Add credentials {self.context} to your kubeconfig",
                user.set_credentials_argv(self.context, cert, key),
            ),
            PlanStep(
                f"Add context {self.context} to your kubeconfig (current context unchanged)",
                user.set_context_argv(self.context),
            ),
            PlanStep(
                "Publish the registry for Tilt/Skaffold (KEP-1755 ConfigMap, JSON on stdin)",
                kubectl.apply_argv(),
                detail=json.dumps(local_registry_hosting(self.config, chart.service_host)),
            ),
            PlanStep("Detect the Helm major version", helm.version_argv()),
            PlanStep(
                "Read the release's latest revision (no upgrade when chart and values are "
                "unchanged: same fingerprint in its description)",
                helm.history_argv(RELEASE, NAMESPACE),
            ),
            PlanStep(
                "Compare the registry image on the host and on each node (by image ID)",
                NodeImages(self.runner).image_id_argv(node, chart.image),
            ),
            PlanStep(
                "Copy it from the host's Docker into the nodes that lack it",
                kind.load_docker_image_argv(chart.image, self.cluster),
            ),
            PlanStep(
                "Deploy the chart (only when chart or values changed), waiting for the rollout",
                upgrade,
                detail=f"values file {self.values_path}: {json.dumps(chart.values, sort_keys=True)}"
                "; with Helm 3 `--atomic --wait` replace `--rollback-on-failure --wait=watcher "
                "--force-conflicts`",
            ),
            PlanStep(
                "Check the rollout (when the release was unchanged; helm waits after a deploy)",
                kubectl.rollout_status_argv(NAMESPACE, RELEASE_SELECTOR, options.timeout),
            ),
            PlanStep(
                "Wait for the registry",
                [],
                detail=f"GET {self.endpoint}/v2/ until 200 with Docker-Distribution-Api-"
                f"Version: registry/2.0, within the {options.timeout:g} s deadline",
            ),
        ]
        return Plan(
            backend=self.name,
            steps=steps,
            kind_config=kind_config.to_dict(),
            notes=[
                f"kubectl and helm always run with --kubeconfig {self.kubeconfig_path} "
                f"--context {self.context}; your current kube context is never changed.",
            ],
        )

    # --- up --------------------------------------------------------------------------
    def up(self, options: UpOptions, steps: Steps) -> UpResult:
        deadline = time.monotonic() + options.timeout
        left = _Budget(deadline, options.timeout)
        actions: list[str] = []
        with steps.step("Validating the chart values"):
            chart = self.chart_inputs(options)
        kind = self.kind()
        with steps.step("Checking Docker"):
            Docker(self.runner, timeout=left(CAP_QUICK, "checking Docker")).ping()
        exists = kind.cluster_exists(self.cluster, timeout=left(CAP_QUICK, "listing clusters"))
        if exists and options.recreate:
            with steps.step(f"Deleting cluster '{self.cluster}' (--recreate; registry data kept)"):
                kind.delete_cluster(self.cluster, timeout=left(CAP_DELETE, "deleting the cluster"))
            actions.append("deleted-cluster")
            exists = False
        kind_config = self.kind_cluster_config(chart)
        if exists:
            self._check_existing_node(kind_config, steps, left, actions)
            steps.done(f"Cluster '{self.cluster}' exists (reused)")
            self._ensure_kubeconfig(kind, left)
        else:
            self._create_cluster(kind, kind_config, steps, left)
            actions.append("created-cluster")
        nodes = kind.get_nodes(self.cluster, timeout=left(CAP_QUICK, "listing nodes"))
        if not nodes:
            raise OperationFailed(
                f"kind lists no nodes for cluster '{self.cluster}'.",
                hint="Recreate it: `pallet-dev up --recreate`.",
            )
        kubectl = self.kubectl()
        with self._step(steps, f"Waiting for {_plural(len(nodes), 'node')} to be Ready"):
            self._wait_nodes_ready(kubectl, left)
        port = self.config.registry.port
        helm = self.helm()

        def read_release() -> tuple[HelmVersion, HelmRevision | None]:
            version = helm.version(timeout=left(CAP_QUICK, "detecting the Helm version"))
            latest = helm.latest_revision(
                RELEASE, NAMESPACE, timeout=left(CAP_QUICK, "reading the release")
            )
            return version, latest

        wrote, published, applied, (version, latest), loaded = self._concurrently(
            steps,
            [
                (
                    f"Pointing containerd at the registry for localhost:{port}",
                    lambda: self._write_hosts_toml(nodes, chart, left),
                ),
                (
                    f"Adding context {self.context} to your kubeconfig",
                    lambda: self._publish_context_or_warning(left),
                ),
                (
                    "Publishing kube-public/local-registry-hosting (KEP-1755)",
                    lambda: self._apply_local_registry_hosting(kubectl, chart, left),
                ),
                (f"Reading release '{RELEASE}' and the Helm version", read_release),
                (
                    f"Registry image {chart.image} in the cluster (from the host's Docker)",
                    lambda: self._ensure_image(kind, nodes, chart, left),
                ),
            ],
        )
        actions += [
            action
            for action, done in (
                ("wrote-hosts-toml", wrote),
                ("published-context", published is True),
                ("applied-local-registry-hosting", applied),
                ("loaded-image", loaded is True),
            )
            if done
        ]
        if release_unchanged(latest, chart):
            assert latest is not None
            steps.done(
                f"Release '{RELEASE}' unchanged (revision {latest.revision}, {latest.chart})"
            )
            with self._step(steps, "Waiting for the registry rollout"):
                kubectl.rollout_status(
                    NAMESPACE,
                    RELEASE_SELECTOR,
                    timeout=left(options.timeout, "waiting for rollout"),
                )
        else:
            # helm waits for the rollout itself (--wait / --wait=watcher)
            self._deploy(helm, version, chart, latest, steps, left)
            actions.append("deployed-release")
        self.await_registry(
            steps,
            deadline,
            options.timeout,
            hint=f"See `kubectl --context {self.context} -n {NAMESPACE} get pods,svc` and "
            f"`kubectl --context {self.context} -n {NAMESPACE} logs -l "
            f"{RELEASE_SELECTOR}`; check nothing else holds port {port}.",
        )
        return UpResult(self.name, self.endpoint, bool(actions), actions)

    def _named(self, name: str, exc: BaseException) -> BaseException:
        """A failed step's error, saying which step failed and what to do."""
        if isinstance(exc, (CommandFailed, CommandTimeout)):
            error = OperationFailed(
                f"{name} failed: {exc.message}",
                hint=exc.hint
                or f"Check the cluster (`kubectl --context {self.context} get nodes,pods -A`);"
                " `pallet-dev up --recreate` rebuilds it (registry data is kept).",
            )
            error.__cause__ = exc
            return error
        if isinstance(exc, OperationFailed) and not exc.message.startswith(name):
            # already explained (e.g. a classified Helm error): add which step it was
            exc.message = f"{name} failed: {exc.message}"
            exc.args = (exc.message,)
        return exc

    @contextmanager
    def _step(self, steps: Steps, name: str) -> Iterator[None]:
        """A ✓/✗ step whose failure names the step and says what to do."""
        with steps.step(name):
            try:
                yield
            except (CommandFailed, CommandTimeout) as exc:
                raise self._named(name, exc) from exc
            except OperationFailed as exc:
                raise self._named(name, exc)

    def _concurrently(self, steps: Steps, tasks: list[tuple[str, Callable[[], Any]]]) -> list[Any]:
        """Run independent steps at once; report each as a ✓/✗ line, in the listed order.

        They touch different things (files in the nodes, the user's kubeconfig, one
        ConfigMap, Helm's release records), so their order does not matter, and
        running them together keeps a re-run of `up` fast. A task may return a
        :class:`_Warning` (its line is ✗, `up` goes on); the first real failure in list
        order is raised, named like any other step.
        """

        def timed(call: Callable[[], Any]) -> tuple[Any, float]:
            started = time.monotonic()
            return call(), time.monotonic() - started

        workers = max(1, min(self.max_parallel, len(tasks)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pallet-dev") as pool:
            futures = [pool.submit(timed, call) for _, call in tasks]
            with steps.running([name for name, _ in tasks]):
                wait(futures)
        results: list[Any] = []
        failure: tuple[str, BaseException] | None = None
        for (name, _), future in zip(tasks, futures):
            exc = future.exception()
            if exc is not None:
                steps.failed(name)
                failure = failure or (name, exc)
                results.append(None)
                continue
            value, elapsed = future.result()
            if isinstance(value, _Warning):
                steps.failed(name)
                steps.warn(value.text)
            else:
                steps.done(name, elapsed)
            results.append(value)
        if failure is not None:
            name, exc = failure
            named = self._named(name, exc)
            if named is exc:
                raise exc
            raise named from exc
        return results

    def _publish_context_or_warning(self, left: _Budget) -> bool | _Warning:
        """Publishing the context is a convenience: pallet-dev uses its private kubeconfig."""
        try:
            return self._publish_context(left)
        except (CommandFailed, CommandTimeout, OperationFailed) as exc:
            return _Warning(
                f"Could not add context {self.context} to your kubeconfig: {exc.message} Use "
                f"`kubectl --kubeconfig {self.kubeconfig_path} --context {self.context}`."
            )

    def _check_existing_node(
        self, kind_config: KindClusterConfig, steps: Steps, left: _Budget, actions: list[str]
    ) -> None:
        """An existing cluster must publish the same port and mount the same data folder."""
        docker = Docker(self.runner, timeout=left(CAP_QUICK, "inspecting the node"))
        node = control_plane_node(self.cluster)
        info = docker.inspect_container(node)
        if info is None:
            raise OperationFailed(
                f"kind lists cluster '{self.cluster}' but its node container {node} is missing.",
                hint="Rebuild it: `pallet-dev up --recreate` (registry data is kept).",
            )
        problems = []
        wanted_port = f"{kind_config.node_port}/tcp"
        if not any(
            binding.container_port == wanted_port
            and binding.host_port == kind_config.host_port
            and (binding.host_ip or "0.0.0.0") == kind_config.listen_address
            for binding in info.ports
        ):
            problems.append(
                f"it does not publish {kind_config.listen_address}:{kind_config.host_port} -> "
                f"{kind_config.node_port}"
            )
        if not any(
            mount.get("Source") == kind_config.host_data_dir
            and mount.get("Destination") == kind_config.node_data_dir
            for mount in info.mounts
        ):
            problems.append(f"it does not mount {kind_config.host_data_dir}")
        if problems:
            raise OperationFailed(
                f"The existing kind cluster '{self.cluster}' was created with other settings: "
                + "; ".join(problems)
                + ".",
                hint="Rebuild it with `pallet-dev up --recreate` (registry data is kept), or "
                "go back to the settings it was created with.",
            )
        if not info.running:
            with self._step(steps, f"Starting the stopped node {node}"):
                docker.start(node)
            actions.append("started-node")

    def _preflight(self, kind_config: KindClusterConfig, steps: Steps, left: _Budget) -> None:
        """Before a cluster is made: what would make it fail on this host (exit 3), or warn."""
        from pallet_dev import preflight

        try:
            host = Docker(self.runner, timeout=left(CAP_QUICK, "reading docker info")).host_info()
        except (CommandFailed, CommandTimeout, OperationFailed) as exc:
            # unknown facts never block: kind itself reports what really fails
            steps.warn(f"Could not read `docker info` for the preflight checks ({exc.message}).")
            from pallet_dev.tools.docker import HostInfo

            host = HostInfo()
        registry = self.config.registry
        preflight.enforce(
            [
                *preflight.node_image_findings(host, kind_config.node_image),
                *preflight.kind_daemon_findings(host),
                *preflight.localhost_findings(registry.bind_address, registry.port),
            ],
            steps.warn,
        )

    def _create_cluster(
        self, kind: Kind, kind_config: KindClusterConfig, steps: Steps, left: _Budget
    ) -> None:
        self._preflight(kind_config, steps, left)
        ensure_port_free(self.config.registry.bind_address, self.config.registry.port, self.runner)
        self._prepare_data_dir()
        self.kind_config_path.parent.mkdir(parents=True, exist_ok=True)
        self.kind_config_path.write_text(kind_config.to_yaml(), encoding="utf-8")
        self.kubeconfig_path.unlink(missing_ok=True)
        name = f"Creating kind cluster '{self.cluster}' ({_short_image(kind_config.node_image)})"
        with steps.step(name):
            try:
                kind.create_cluster(
                    self.cluster,
                    str(self.kind_config_path),
                    str(self.kubeconfig_path),
                    timeout=left(CAP_CREATE, "creating the cluster"),
                )
            except CommandTimeout as exc:
                # killed mid-way, kind could not clean up: remove the half-made nodes
                self._delete_quietly(kind)
                raise ReadinessTimeout(
                    f"Creating the kind cluster did not finish within {exc.timeout:g} s; "
                    "the half-made cluster was deleted.",
                    hint="Retry with a larger --timeout; the first run may pull the node image.",
                ) from exc
            except CommandFailed as exc:
                self._delete_quietly(kind)
                raise OperationFailed(
                    f"Creating the kind cluster failed: {exc.message}",
                    hint=_create_hint(exc.stderr, kind_config),
                ) from exc
        os.chmod(self.kubeconfig_path, 0o600)

    def _delete_quietly(self, kind: Kind) -> None:
        try:
            kind.delete_cluster(self.cluster, timeout=CAP_DELETE)
        except PalletError:
            pass

    def _prepare_data_dir(self) -> None:
        """The host folder the node mounts, writable by the registry pod whatever its uid.

        hostPath volumes ignore fsGroup, and with rootless Docker or a remapped uid
        the pod's uid is not the host user's, so the folder itself is mode 0777; its
        parent (pallet-dev's folder for this environment) is 0700, so no other local
        user can reach it. Docker's bind mount does not depend on the parent's mode.
        """
        env_dir = self.paths.env_data_dir(self.cluster)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(env_dir, 0o700)
        os.chmod(self.data_dir, 0o777)

    def _ensure_kubeconfig(self, kind: Kind, left: _Budget) -> None:
        """Our private kubeconfig for a cluster that exists (fetched again when missing)."""
        if self.kubeconfig_path.is_file():
            return
        text = kind.get_kubeconfig(self.cluster, timeout=left(CAP_QUICK, "reading kubeconfig"))
        self._write_private(self.kubeconfig_path, text)

    def _write_private(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)

    def _wait_nodes_ready(self, kubectl: Kubectl, left: _Budget) -> None:
        last = "no answer yet"
        while True:
            try:
                nodes = kubectl.get_nodes(timeout=left(CAP_QUICK, "waiting for nodes"))
            except CommandFailed as exc:
                nodes, last = [], exc.stderr_tail or exc.message
            else:
                waiting = [node.name for node in nodes if not node.ready]
                if nodes and not waiting:
                    return
                last = f"not Ready: {', '.join(waiting)}" if waiting else "no nodes registered"
            if left.remaining() <= self.poll_interval:
                raise ReadinessTimeout(
                    f"The cluster's nodes were not Ready within {left.total:g} s ({last}).",
                    hint=f"See `kubectl --context {self.context} describe nodes`; retry with a "
                    "larger --timeout.",
                )
            time.sleep(self.poll_interval)

    def _write_hosts_toml(self, nodes: list[str], chart: ChartInputs, left: _Budget) -> bool:
        files = NodeFiles(self.runner)
        port = self.config.registry.port
        path = hosts_toml_path(port)
        changed = False
        for node in nodes:
            content = hosts_toml(port, node, chart.node_port)
            if files.read(node, path, timeout=left(CAP_QUICK, "reading hosts.toml")) == content:
                continue
            files.write(node, path, content, timeout=left(CAP_QUICK, "writing hosts.toml"))
            changed = True
        return changed

    def _cert_files(self) -> tuple[Path, Path, Path]:
        return (
            self.certs_dir / "ca.crt",
            self.certs_dir / "client.crt",
            self.certs_dir / "client.key",
        )

    def _publish_context(self, left: _Budget) -> bool:
        """Make ``kind-<name>`` usable from the user's kubeconfig; never switch to it.

        `kind create cluster` would make the new context current in the user's
        kubeconfig (kind merges and sets current-context). So kind writes to our
        private file instead, and the entries are copied with `kubectl config
        set-cluster/set-credentials/set-context`, which add or replace entries and
        leave current-context alone. Nothing runs when the user's entry already
        matches.
        """
        ours = entry_from_kubeconfig(self.kubeconfig_path.read_text(encoding="utf-8"), self.context)
        if ours is None:
            raise OperationFailed(
                f"The kubeconfig kind wrote ({self.kubeconfig_path}) has no context "
                f"{self.context}.",
                hint="Rebuild the cluster: `pallet-dev up --recreate`.",
            )
        user = UserKubeconfig(self.runner)
        if user.entry(self.context, timeout=left(CAP_QUICK, "reading your kubeconfig")) == ours:
            return False
        files = self._cert_files()
        try:
            self.certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.certs_dir, 0o700)
            for path, data in zip(files, _cert_data(ours)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(base64.b64decode(data))
            user.set_entry(
                self.context,
                ours.server,
                (str(files[0]), str(files[1]), str(files[2])),
                timeout=left(CAP_QUICK, "updating your kubeconfig"),
            )
        finally:
            for path in files:
                path.unlink(missing_ok=True)
            try:
                self.certs_dir.rmdir()
            except OSError:
                pass
        return True

    def _apply_local_registry_hosting(
        self, kubectl: Kubectl, chart: ChartInputs, left: _Budget
    ) -> bool:
        manifest = local_registry_hosting(self.config, chart.service_host)
        current = kubectl.get_configmap(
            LOCAL_REGISTRY_HOSTING_NAMESPACE,
            LOCAL_REGISTRY_HOSTING_NAME,
            timeout=left(CAP_QUICK, "reading local-registry-hosting"),
        )
        if current is not None and current.get("data") == manifest["data"]:
            return False
        kubectl.apply(manifest, timeout=left(CAP_QUICK, "applying local-registry-hosting"))
        return True

    def _ensure_image(
        self, kind: Kind, nodes: list[str], chart: ChartInputs, left: _Budget
    ) -> bool | _Warning:
        """Copy the registry image from the host's Docker into nodes that lack it.

        The nodes then never pull it (the chart uses IfNotPresent), so `up` works
        offline. Presence is compared by image ID, as kind does, so nothing is copied
        when every node has the host's image already.
        """
        docker = Docker(self.runner, timeout=left(CAP_QUICK, "inspecting the registry image"))
        host_id = docker.image_id(chart.image)
        if host_id is None:
            return _Warning(
                f"{chart.image} is not in the host's Docker: the node pulls it from its "
                "registry (this needs the network)."
            )
        images = NodeImages(self.runner)
        if all(
            images.image_id(node, chart.image, timeout=left(CAP_QUICK, "inspecting node images"))
            == host_id
            for node in nodes
        ):
            return False
        kind.load_docker_image(
            chart.image, self.cluster, timeout=left(CAP_LOAD, "loading the registry image")
        )
        return True

    def _deploy(
        self,
        helm: Helm,
        version: HelmVersion,
        chart: ChartInputs,
        latest: HelmRevision | None,
        steps: Steps,
        left: _Budget,
    ) -> None:
        self._write_private(self.values_path, json.dumps(chart.values, indent=2, sort_keys=True))
        verb = "Installing" if latest is None else "Upgrading"
        name = f"{verb} chart {CHART_NAME} as release '{RELEASE}' (Helm {version.major})"
        with steps.step(name):
            helm.upgrade_install(
                RELEASE,
                str(chart.chart_dir),
                NAMESPACE,
                values_files=[str(self.values_path)],
                timeout=left(CAP_CREATE, "deploying the chart"),
                description=chart.description,
            )

    # --- down / status ---------------------------------------------------------------
    def down(self, *, clean: bool, steps: Steps) -> DownResult:
        kind = self.kind()
        removed: list[str] = []
        if kind.cluster_exists(self.cluster):
            with self._step(steps, f"Deleting kind cluster '{self.cluster}'"):
                kind.delete_cluster(self.cluster, timeout=CAP_DELETE)
            removed.append(f"kind cluster {self.cluster}")
        # pallet-dev's own files about the cluster; the data folder is `down`'s to keep or clean
        for path in (
            self.kubeconfig_path,
            self.kind_config_path,
            self.values_path,
            self.agents.values_path,
        ):
            path.unlink(missing_ok=True)
        if self.agents.api_dir.is_dir():
            import shutil

            shutil.rmtree(self.agents.api_dir, ignore_errors=True)
        return DownResult(self.name, removed, [])

    def status(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "exists": False,
            "cluster": {"name": self.cluster, "context": self.context},
            "release": None,
            "registry_pod": None,
            "pvc": None,
            "endpoint": self.endpoint,
            "data_dir": {"path": str(self.data_dir), "exists": self.data_dir.is_dir()},
        }
        kind = self.kind()
        try:
            if not kind.cluster_exists(self.cluster):
                return report
        except (CommandFailed, CommandTimeout) as exc:
            report["error"] = exc.message
            return report
        report["exists"] = True
        cluster = report["cluster"]
        try:
            self._ensure_kubeconfig(kind, _Budget(time.monotonic() + CAP_QUICK, CAP_QUICK))
        except PalletError as exc:
            cluster["error"] = exc.message
            return report
        kubectl = self.kubectl()
        nodes = _attempt(lambda: kubectl.get_nodes(), cluster)
        if nodes is not None:
            cluster["nodes"] = [{"name": n.name, "ready": n.ready} for n in nodes]
            cluster["nodes_ready"] = bool(nodes) and all(n.ready for n in nodes)
        release_report: dict[str, Any] = {}
        latest = _attempt(lambda: self.helm().latest_revision(RELEASE, NAMESPACE), release_report)
        if latest is not None:
            chart_version = latest.chart.removeprefix(f"{CHART_NAME}-")
            release_report.update(
                name=RELEASE,
                namespace=NAMESPACE,
                revision=latest.revision,
                status=latest.status,
                chart=latest.chart,
                chart_version=chart_version,
                app_version=latest.app_version,
                updated=latest.updated,
                managed_by_pallet_dev=latest.description.startswith(DESCRIPTION_PREFIX),
            )
        report["release"] = release_report or None
        pod_report: dict[str, Any] = {}
        pods = _attempt(lambda: kubectl.get_pods(NAMESPACE, RELEASE_SELECTOR), pod_report)
        if pods:
            pod = pods[0]
            pod_report.update(
                name=pod.name,
                phase=pod.phase,
                ready=pod.ready,
                restarts=pod.restarts,
                waiting_reason=pod.waiting_reason,
            )
        report["registry_pod"] = pod_report or None
        pvc_report: dict[str, Any] = {}
        pvcs = _attempt(lambda: kubectl.get_pvcs(NAMESPACE, RELEASE_SELECTOR), pvc_report)
        if pvcs:
            pvc = pvcs[0]
            pvc_report.update(
                name=pvc.name, phase=pvc.phase, bound=pvc.phase == "Bound", capacity=pvc.capacity
            )
        report["pvc"] = pvc_report or None
        return report


@dataclass(frozen=True)
class _Warning:
    """A step that did not work out but does not stop `up`."""

    text: str


class _Budget:
    """The time left before the `--timeout` deadline; each call gets min(left, cap)."""

    def __init__(self, deadline: float, total: float) -> None:
        self.deadline = deadline
        self.total = total

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def __call__(self, cap: float, doing: str) -> float:
        remaining = self.remaining()
        if remaining <= 0:
            raise ReadinessTimeout(
                f"The {self.total:g} s deadline (--timeout) passed before {doing}.",
                hint="Retry with a larger --timeout.",
            )
        return min(remaining, cap)


def _attempt(call: Callable[[], T], report: dict[str, Any]) -> T | None:
    """Run one status query; record its error instead of failing the whole status."""
    try:
        return call()
    except PalletError as exc:
        report["error"] = exc.message
        return None


def _cert_data(entry: KubeconfigEntry) -> tuple[str, str, str]:
    return (
        entry.certificate_authority_data,
        entry.client_certificate_data,
        entry.client_key_data,
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _short_image(image: str) -> str:
    return image.split("@", 1)[0]


def _create_hint(stderr: str, kind_config: KindClusterConfig) -> str:
    text = stderr.lower()
    if "address already in use" in text or "port is already allocated" in text:
        return port_conflict_hint(kind_config.host_port, None)
    if "failed to pull image" in text or "pull access denied" in text:
        return (
            f"The node image {kind_config.node_image} cannot be pulled: check the network, or "
            "set kind.node_image (PALLET_DEV_KIND_NODE_IMAGE) to an image you have."
        )
    if "already exist" in text:
        return f"Delete it (`kind delete cluster --name {kind_config.name}`) or use another name."
    return "See kind's output above; `pallet-dev doctor` checks the prerequisites."
