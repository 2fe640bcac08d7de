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
   ``certs.d/localhost:<port>/hosts.toml`` on every node (see
   :func:`~pallet_dev.backends.registry_wiring.hosts_toml` for the route and why);
   add the ``kind-<name>`` context to the user's kubeconfig without changing its
   current context (see :func:`pallet_dev.backends.kind_up.publish_context`); apply
   the KEP-1755 ConfigMap
   ``kube-public/local-registry-hosting``; read the Helm major and the release's
   latest revision; copy the registry image from the host's Docker into nodes
   that lack it (`kind load docker-image`), so nothing is pulled that the host has;
5. deploy the chart as release ``registry`` in namespace ``pallet`` with
   ``helm upgrade --install`` (Helm waits for the rollout) -- skipped when the
   deployed revision has the same chart and values (no new revision; then the
   rollout is checked with kubectl);
6. wait for ``GET /v2/`` on ``localhost:<port>``.

The sequence is one list of steps (:func:`pallet_dev.backends.kind_up.up_steps`), which `--dry-run`
prints and `up` runs (:mod:`pallet_dev.backends.steps`). Every step is bounded by the
one ``--timeout`` deadline: each subprocess gets the smaller of the time left and its
own cap. The chart's inputs are in :mod:`pallet_dev.chart.inputs`, the registry wiring
of the nodes in :mod:`pallet_dev.backends.registry_wiring`, the cluster's own life in
:mod:`pallet_dev.backends.kind_cluster`.

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
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from pallet_dev.agents.spec import ApiAccess
from pallet_dev.backends import kind_cluster, kind_record
from pallet_dev.backends.base import (
    Backend,
    BackendStatus,
    DownResult,
    GcResult,
    MirrorGc,
    Plan,
    PlanStep,
    UpOptions,
    UpResult,
)
from pallet_dev.backends.kind_agents import ReleasedAgents, write_secret_files
from pallet_dev.backends.kind_cluster import CAP_DELETE
from pallet_dev.backends.kind_up import KindUp, up_steps
from pallet_dev.backends.steps import Deadline, StepFailureNaming, plan_steps, run_steps
from pallet_dev.chart.inputs import NAMESPACE, ChartInputs, find_chart_dir, load_chart_inputs
from pallet_dev.errors import OperationFailed
from pallet_dev.settings import Settings
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.runner import Runner
from pallet_dev.tools.helm import Helm
from pallet_dev.tools.kind import Kind, KindClusterConfig
from pallet_dev.tools.kubeconfig import entry_from_kubeconfig
from pallet_dev.tools.kubectl import Kubectl


class KindBackend(ReleasedAgents, Backend):
    name = "kind"
    uses_chart = True
    # seconds between polls of node readiness (tests set 0)
    poll_interval = 0.25
    # independent steps run at once: all five of them (tests set 1 for a fixed command order)
    max_parallel = 5

    def __init__(
        self,
        config: Settings,
        runner: Runner,
        paths: Paths,
        *,
        chart_dir: Path | None = None,
        helm_binary: str = "helm",
    ) -> None:
        super().__init__(config, runner, paths)
        self._chart_dir = chart_dir
        self.helm_binary = helm_binary
        self._chart: ChartInputs | None = None  # the registry chart inputs `up` used
        self._service_host: str | None = None  # from the last `up`'s record (as_last_up)
        self.naming = StepFailureNaming(
            f"Check the cluster (`kubectl --context {self.context} get nodes,pods -A`); "
            "`pallet-dev up --recreate` rebuilds it (registry data is kept)."
        )

    # --- names and files -------------------------------------------------------------
    @property
    def cluster(self) -> str:
        return self.config.name

    @property
    def context(self) -> str:
        return self.config.kube_context

    @property
    def kubeconfig_path(self) -> Path:
        return self.paths.kind_kubeconfig(self.cluster)

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
        self._chart = load_chart_inputs(self.config, options, self.chart_dir, self.mirror_digest)
        return self._chart

    def as_last_up(self, options: UpOptions, record: Mapping[str, Any]) -> None:
        # the registry Service's name (agent_registry_address): as the record has it (the
        # same inputs), else from the chart inputs (yaml and pydantic: ~0.3 s)
        host = record.get("service_host")
        if isinstance(host, str) and host:
            self._service_host = host
        else:
            self.chart_inputs(options)

    # --- agents ----------------------------------------------------------------------

    @property
    def agents_namespace(self) -> str:
        return NAMESPACE

    @property
    def image_pull_secrets(self) -> tuple[str, ...]:
        return ()  # the nodes pull from the local registry without credentials

    def write_api_access(self, api_dir: Path) -> ApiAccess:
        """The kind context's CA and client certificate as 0600 files, for `health`."""
        text = self.kubeconfig_path.read_text(encoding="utf-8")
        entry = entry_from_kubeconfig(text, self.context)
        if entry is None:
            raise OperationFailed(
                f"The kubeconfig {self.kubeconfig_path} has no context {self.context}.",
                hint="Rebuild the cluster: `pallet-dev up --recreate`.",
            )
        files = write_secret_files(
            api_dir,
            {
                "ca.crt": base64.b64decode(entry.certificate_authority_data),
                "client.crt": base64.b64decode(entry.client_certificate_data),
                "client.key": base64.b64decode(entry.client_key_data),
            },
        )
        return ApiAccess(
            entry.server.rstrip("/"), files["ca.crt"], files["client.crt"], files["client.key"]
        )

    @property
    def agent_registry_address(self) -> str:
        """The registry Service's DNS name and port: what pods use to reach it."""
        if self._service_host is not None:
            return self._service_host
        chart = self._chart or self.chart_inputs(UpOptions())
        return chart.service_host

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

    # --- up: one list of steps (kind_up.up_steps), planned by --dry-run and run by up ----
    def _start(self, options: UpOptions, ui: Steps, deadline: Deadline) -> KindUp:
        chart = self.chart_inputs(options)
        config = self.kind_cluster_config(chart)
        tools = (self.kind(), self.kubectl(), self.helm())
        return KindUp(self, options, chart, config, deadline, ui, *tools)

    def plan_up(self, options: UpOptions) -> Plan:
        run = self._start(options, Steps(quiet=True), Deadline(options.timeout))
        return Plan(
            backend=self.name,
            steps=plan_steps(up_steps(run), run),
            kind_config=run.kind_config.to_dict(),
            notes=[
                f"kubectl and helm always run with --kubeconfig {self.kubeconfig_path} "
                f"--context {self.context}; your current kube context is never changed.",
            ],
        )

    def up(self, options: UpOptions, steps: Steps) -> UpResult:
        deadline = Deadline(options.timeout)
        with steps.step("Validating the chart values"):
            run = self._start(options, steps, deadline)
        inputs = self.record_inputs(options.values_files, options.set_overrides)
        run_steps(up_steps(run), run, self.naming, max_parallel=self.max_parallel)
        record = kind_record.make_record(
            inputs,
            run.chart.image,
            run.node_identity,
            run.host_image_id,
            self.kubeconfig_path,
            run.chart.service_host,
        )
        return UpResult(self.name, self.endpoint, bool(run.actions), run.actions, record)

    def record_inputs(self, values_files: Sequence[str], set_overrides: Sequence[str]) -> str:
        """The digest of what `up` converges from (backends/kind_record.py)."""
        return kind_record.inputs_digest(
            self.config.to_dict(),
            self.chart_dir,
            values_files,
            set_overrides,
            extra=self.mirror_digest,
        )

    @cached_property
    def mirror_digest(self) -> str:
        """The caches' CA files and credentials (backends/kind_mirrors.py), once a run."""
        from pallet_dev.backends import kind_mirrors

        return kind_mirrors.inputs_digest(self.config, self.paths.state_dir)

    # --- down / status ---------------------------------------------------------------
    def down(self, *, clean: bool, steps: Steps) -> DownResult:
        kind = self.kind()
        removed: list[str] = []
        if kind.cluster_exists(self.cluster):
            with self.naming.step(steps, f"Deleting kind cluster '{self.cluster}'"):
                kind.delete_cluster(self.cluster, timeout=CAP_DELETE)
            removed.append(f"kind cluster {self.cluster}")
        # pallet-dev's own files about the cluster; the data folder is `down`'s to keep or clean
        for path in (
            self.kubeconfig_path,
            self.kind_config_path,
            self.values_path,
            self.agents.values_path,
            self.agents.applied_path,
        ):
            path.unlink(missing_ok=True)
        if self.agents.api_dir.is_dir():
            import shutil

            shutil.rmtree(self.agents.api_dir, ignore_errors=True)
        return DownResult(self.name, removed, [])

    def status(self) -> BackendStatus:
        from pallet_dev.backends.kind_status import kind_status

        return kind_status(self)

    # --- gc: the registry Deployment scaled to 0 meanwhile (kind_gc) ------------------
    def registry_data_size(self) -> int | None:
        from pallet_dev.backends.kind_mirrors import MIRRORS_FOLDER
        from pallet_dev.backends.kind_status import folder_size

        # the caches' folders inside it are never the registry's (gc leaves them alone)
        if not self.data_dir.is_dir():
            return None
        return folder_size(self.data_dir, skip=MIRRORS_FOLDER)

    def plan_collect_garbage(self, *, delete_untagged: bool) -> list[PlanStep]:
        from pallet_dev.backends import kind_gc

        return kind_gc.plan(self, delete_untagged=delete_untagged)

    def collect_garbage(self, *, delete_untagged: bool, steps: Steps, timeout: float) -> GcResult:
        from pallet_dev.backends import kind_gc

        return kind_gc.collect(self, delete_untagged=delete_untagged, steps=steps, timeout=timeout)

    # --- gc --mirrors: the caches' Deployment scaled to 0 meanwhile (kind_mirrors_gc) ---
    def plan_clean_mirrors(self, *, older_than: timedelta | None, now: datetime) -> list[MirrorGc]:
        from pallet_dev.backends import kind_mirrors_gc

        return kind_mirrors_gc.plan(self, older_than=older_than, now=now)

    def clean_mirrors(
        self, *, older_than: timedelta | None, now: datetime, steps: Steps, timeout: float
    ) -> list[MirrorGc]:
        from pallet_dev.backends import kind_mirrors_gc

        return kind_mirrors_gc.clean(
            self, older_than=older_than, now=now, steps=steps, timeout=timeout
        )

    def _write_private(self, path: Path, text: str) -> None:
        kind_cluster.write_private(path, text)
