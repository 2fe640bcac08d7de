"""Agents on the kind backend: the pallet-agents chart as Helm release ``agents``.

One Deployment and Service per agent in namespace ``pallet``, images by digest from
``localhost:<port>/...`` (pulled through each node's containerd hosts.toml, no
`kind load`), readiness on the agent's health path every second, rolling updates
that keep the old pod serving until the new one is ready (and Helm's rollback on
failure). An unchanged fingerprint (chart files + values) means no upgrade at all,
as for the registry's release. `health` reaches agents through the API server's
service proxy with the kind client certificate, which `up` keeps in the state folder.
The cluster backend (backends/cluster.py) runs the same release in the user's own
namespace of a shared cluster, through :class:`AgentsHost`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pallet_dev.agents.health import check_agents
from pallet_dev.agents.spec import AgentDeployment, AgentEndpoint, AgentsState, ApiAccess
from pallet_dev.backends import kind_agents_record
from pallet_dev.backends.base import PlanStep, UpOptions
from pallet_dev.backends.kind_agents_record import AppliedValues
from pallet_dev.errors import CommandFailed, CommandTimeout, OperationFailed, ReadinessTimeout
from pallet_dev.output import Steps
from pallet_dev.chart.release import PLAN_HELM_VERSION, description_for, same_release
from pallet_dev.chart.release import chart_fingerprint as fingerprint

if TYPE_CHECKING:
    from pallet_dev.paths import Paths
    from pallet_dev.tools.helm import Helm, HelmRevision
    from pallet_dev.tools.kubectl import Kubectl

AGENTS_RELEASE = "agents"
AGENTS_CHART = "pallet-agents"
AGENTS_SELECTOR = f"app.kubernetes.io/instance={AGENTS_RELEASE}"
CAP_DEPLOY = 600.0


def find_agents_chart() -> Path:
    """The pallet-agents chart: shipped inside the package, else the checkout's charts/."""
    from pallet_dev.errors import ConfigError

    package = Path(__file__).resolve().parents[1]
    for candidate in (
        package / "charts" / AGENTS_CHART,
        package.parents[1] / "charts" / AGENTS_CHART,
    ):
        if (candidate / "Chart.yaml").is_file():
            return candidate
    raise ConfigError(f"Cannot find the {AGENTS_CHART} Helm chart next to the pallet-dev package.")


def chart_values(
    deployments: Sequence[AgentDeployment], pull_secrets: Sequence[str] = ()
) -> dict[str, Any]:
    agents = []
    for d in deployments:
        entry: dict[str, Any] = {
            "name": d.name,
            "image": d.image,
            "port": d.port,
            "health": d.health,
            "replicas": d.replicas,
            "env": dict(sorted(d.env.items())),
        }
        resources = {k: v for k, v in (("memory", d.memory), ("cpu", d.cpu)) if v}
        if resources:
            entry["resources"] = resources
        agents.append(entry)
    values: dict[str, Any] = {"agents": agents}
    if pull_secrets:
        values["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    return values


def chart_version(chart_dir: Path) -> str:
    for line in (chart_dir / "Chart.yaml").read_text(encoding="utf-8").splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return "0"


class AgentsHost(Protocol):
    """What the agents' release needs of its backend (kind, or a shared cluster)."""

    name: str
    paths: Paths

    @property
    def cluster(self) -> str:
        """The stem of pallet-dev's own files about the environment."""

    @property
    def context(self) -> str: ...

    @property
    def agents_namespace(self) -> str: ...

    @property
    def image_pull_secrets(self) -> tuple[str, ...]: ...

    def helm(self) -> Helm: ...

    def kubectl(self) -> Kubectl: ...

    def write_api_access(self, api_dir: Path) -> ApiAccess: ...

    def _write_private(self, path: Path, text: str) -> None: ...


class ReleasedAgents:
    """A backend's agent methods when its agents are the pallet-agents release (kind, and
    a shared cluster): each hands over to :class:`KindAgents` on the backend, which must
    be an :class:`AgentsHost`."""

    @property
    def agents(self) -> KindAgents:
        return KindAgents(cast(AgentsHost, self))

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


class KindAgents:
    """The agents' release on a backend (the kind backend's, and the cluster backend's in
    its own namespace)."""

    def __init__(self, backend: AgentsHost) -> None:
        self.backend = backend
        self._chart_dir: Path | None = None

    @property
    def chart_dir(self) -> Path:
        if self._chart_dir is None:
            self._chart_dir = find_agents_chart()
        return self._chart_dir

    @property
    def namespace(self) -> str:
        return self.backend.agents_namespace

    def values(self, deployments: Sequence[AgentDeployment]) -> dict[str, Any]:
        return chart_values(deployments, self.backend.image_pull_secrets)

    @property
    def values_path(self) -> Path:
        return self.backend.paths.state_dir / f"{self.backend.cluster}-agents-values.json"

    @property
    def applied_path(self) -> Path:
        """What the Deployments run when set image moved them past the release's values."""
        return self.backend.paths.state_dir / f"{self.backend.cluster}-agents-applied.json"

    @property
    def api_dir(self) -> Path:
        return self.backend.paths.state_dir / f"{self.backend.cluster}-api"

    def plan(self, deployments: Sequence[AgentDeployment], options: UpOptions) -> list[PlanStep]:
        helm = self.backend.helm()
        values = self.values(deployments)
        description = description_for(fingerprint(self.chart_dir, values))
        return [
            PlanStep(
                f"Read release '{AGENTS_RELEASE}' (no upgrade when chart and values are unchanged)",
                helm.history_argv(AGENTS_RELEASE, self.namespace),
            ),
            PlanStep(
                f"Deploy the agents (chart {AGENTS_CHART}, one Deployment + Service each, images "
                "by digest), waiting for their readiness probes",
                helm.upgrade_install_argv(
                    AGENTS_RELEASE,
                    str(self.chart_dir),
                    self.namespace,
                    values_files=[str(self.values_path)],
                    timeout=options.timeout,
                    description=description,
                    version=PLAN_HELM_VERSION,
                ),
                detail=f"values file {self.values_path}: {json.dumps(values, sort_keys=True)}",
            ),
            PlanStep(
                "Check each agent's health path through the API server's service proxy",
                [],
                detail="GET https://<api-server>/api/v1/namespaces/"
                f"{self.namespace}/services/<agent>:<port>/proxy<health> until 2xx",
            ),
        ]

    def deploy(
        self, deployments: Sequence[AgentDeployment], deadline: float, steps: Steps
    ) -> AgentsState:
        helm = self.backend.helm()
        values = self.values(deployments)
        chart_name = f"{AGENTS_CHART}-{chart_version(self.chart_dir)}"
        description = description_for(fingerprint(self.chart_dir, values))
        api = self.write_api_access()
        endpoints = [self.endpoint(d, api) for d in deployments]
        applied = kind_agents_record.read(self.applied_path)
        # the agents whose image alone changed since the values last applied ([]: none)
        moved = kind_agents_record.image_changes(applied.values, values) if applied else None
        drift: str | None = None
        if applied is not None and moved:
            latest, settled = self._as_by_hand(applied, deployments, moved, deadline, steps)
            if settled:
                self._applied(applied, values)
        else:
            latest = helm.latest_revision(
                AGENTS_RELEASE, self.namespace, timeout=_left(deadline, 30)
            )
            same = same_release(latest, chart_name, description)
            settled = same or (applied is not None and moved == [] and applied.holds(latest))
            drift = self._drift(deployments) if settled else None
            settled = settled and drift is None
            if settled:
                assert latest is not None
                steps.done(f"Agents release unchanged (revision {latest.revision})")
        if not settled:
            if drift:
                steps.note(f"{drift}; deploying the configured agents again")
            self._upgrade(deployments, values, description, latest, deadline, steps)
            # Helm numbers each upgrade one past the latest revision
            revision = latest.revision + 1 if latest is not None else 1
            self._applied(AppliedValues(revision, chart_name, description, values), values)
        with steps.step("Checking every agent's health path through the API server"):
            self._await_healthy(endpoints, api, deadline)
        return AgentsState(endpoints, api)

    def _as_by_hand(
        self,
        applied: AppliedValues,
        deployments: Sequence[AgentDeployment],
        moved: Sequence[str],
        deadline: float,
        steps: Steps,
    ) -> tuple[HelmRevision | None, bool]:
        """Set the ``moved`` agents' images and wait for their rollouts, as by hand, while
        `helm history` and one `kubectl get` check that the release is still where these
        values were applied and that nothing else moved: (latest revision, True) when so;
        else (latest, False), and the Helm upgrade converges everything."""
        helm = self.backend.helm()
        failure: OperationFailed | None = None
        with ThreadPoolExecutor(2, thread_name_prefix="pallet-check") as pool:
            history = pool.submit(
                helm.latest_revision, AGENTS_RELEASE, self.namespace, timeout=_left(deadline, 30)
            )
            drift = pool.submit(self._drift, deployments, moved)
            try:
                for name in moved:
                    self._set_image(deployments, name, deadline, steps)
            except OperationFailed as exc:
                failure = exc
            latest = history.result()
            settled = applied.holds(latest) and drift.result() is None
        if failure is not None and settled:
            raise failure  # the new image itself fails; its rollout was undone
        return latest, settled

    def _upgrade(
        self,
        deployments: Sequence[AgentDeployment],
        values: dict[str, Any],
        description: str,
        latest: HelmRevision | None,
        deadline: float,
        steps: Steps,
    ) -> None:
        self.backend._write_private(self.values_path, json.dumps(values, indent=2))
        verb = "Installing" if latest is None else "Upgrading"
        names = ", ".join(d.name for d in deployments)
        with steps.step(f"{verb} the agents ({names}) as release '{AGENTS_RELEASE}'"):
            try:
                self.backend.helm().upgrade_install(
                    AGENTS_RELEASE,
                    str(self.chart_dir),
                    self.namespace,
                    values_files=[str(self.values_path)],
                    timeout=_left(deadline, CAP_DEPLOY),
                    description=description,
                )
            except (CommandFailed, CommandTimeout, OperationFailed) as exc:
                raise self._diagnose(deployments, exc) from exc

    def _drift(
        self, deployments: Sequence[AgentDeployment], rolling: Collection[str] = ()
    ) -> str | None:
        """What differs in the cluster from an unchanged release (None: nothing).

        A same-fingerprint release says the values are as configured, not that nobody
        changed the Deployments since (`kubectl set image`, `kubectl scale`): one `kubectl
        get deployments` tells, and `up` converges them back. The images of the agents
        ``rolling`` out meanwhile are their rollout's to check.
        """
        kubectl = self.backend.kubectl()
        try:
            items = kubectl.get_deployments(self.namespace, AGENTS_SELECTOR)
        except (CommandFailed, CommandTimeout, OperationFailed) as exc:
            return f"cannot read the agents' Deployments ({exc.message})"
        live: dict[str, tuple[str, int]] = {}
        for item in items:
            spec = item.get("spec") or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
            name = str((item.get("metadata") or {}).get("name", ""))
            live[name] = (str(containers[0].get("image", "")), int(spec.get("replicas") or 0))
        for d in deployments:
            if d.name not in live:
                return f"the Deployment of agent '{d.name}' is missing"
            image, replicas = live[d.name]
            if image != d.image and d.name not in rolling:
                return f"agent '{d.name}' runs {image}, not {d.digest[:19]}"
            if replicas != d.replicas:
                return f"agent '{d.name}' has {replicas} replicas, not {d.replicas}"
        return None

    def roll_out_images(
        self,
        deployments: Sequence[AgentDeployment],
        changed: Sequence[str],
        deadline: float,
        steps: Steps,
    ) -> AgentsState:
        """`dev`: set the changed agents' images on their Deployments and wait for the
        rollout, about a second quicker than a Helm upgrade. The values the Deployments
        then run are recorded (kind_agents_record), so the next `up` needs no upgrade. A
        rollout that does not finish is undone, so the old pods, never replaced
        (maxUnavailable 0), serve on.
        """
        api = self.write_api_access()
        for name in changed:
            self._set_image(deployments, name, deadline, steps)
        applied = kind_agents_record.read(self.applied_path)
        if applied is not None:  # the next `up` then compares with what runs
            self._applied(applied, chart_values(deployments))
        endpoints = [self.endpoint(d, api) for d in deployments]
        wanted = [e for e in endpoints if e.name in changed]
        self._await_healthy(wanted, api, deadline)
        return AgentsState(endpoints, api)

    def _set_image(
        self, deployments: Sequence[AgentDeployment], name: str, deadline: float, steps: Steps
    ) -> None:
        """One agent's new image on its Deployment, waited for; undone when it fails."""
        kubectl = self.backend.kubectl()
        d = next(d for d in deployments if d.name == name)
        with steps.step(f"Rolling out agent '{name}' ({d.digest[:19]})"):
            try:
                kubectl.set_image(self.namespace, name, name, d.image, timeout=_left(deadline, 30))
                kubectl.rollout_status_of(self.namespace, name, timeout=_left(deadline, CAP_DEPLOY))
            except (CommandFailed, CommandTimeout) as exc:
                story = self._pod_story(name)
                try:
                    kubectl.rollout_undo(self.namespace, name, timeout=30)
                except (CommandFailed, CommandTimeout):
                    pass
                raise OperationFailed(
                    f"Agent '{name}' did not become ready, so its rollout was undone (the "
                    f"previous version keeps serving){story}",
                    hint=f"`pallet-dev logs {name}`; check its port ({d.port}) and health "
                    f"path ({d.health}).",
                ) from exc

    def _applied(self, base: AppliedValues, values: dict[str, Any]) -> None:
        record = AppliedValues(base.revision, base.chart, base.description, values)
        self.backend._write_private(self.applied_path, record.to_json())

    def endpoint(self, deployment: AgentDeployment, api: ApiAccess) -> AgentEndpoint:
        ns = self.namespace
        return AgentEndpoint(
            deployment.name,
            self.backend.name,
            deployment.replicas,
            proxy_url=f"{api.server}/api/v1/namespaces/{ns}/services/"
            f"{deployment.name}:{deployment.port}/proxy{deployment.health}",
            deployment_url=f"{api.server}/apis/apps/v1/namespaces/{ns}/deployments/"
            f"{deployment.name}",
            digest=deployment.digest,
        )

    def write_api_access(self) -> ApiAccess:
        """The API server's address and credentials as 0600 files, for `health`."""
        return self.backend.write_api_access(self.api_dir)

    def _await_healthy(
        self, endpoints: Sequence[AgentEndpoint], api: ApiAccess, deadline: float
    ) -> None:
        pending = list(endpoints)
        last: dict[str, str] = {}
        while pending:
            results = check_agents(pending, api, timeout=max(0.5, min(2.0, _left(deadline, 2.0))))
            last = {r.name: r.error or "unhealthy" for r in results if not r.healthy}
            pending = [e for e in pending if e.name in last]
            if not pending:
                return
            if time.monotonic() + 0.1 >= deadline:
                name = pending[0].name
                raise ReadinessTimeout(
                    f"Agent '{name}' did not turn healthy in time (last probe: {last[name]})"
                    + self._pod_story(name),
                    hint=f"`pallet-dev logs {name}`; `kubectl --context {self.backend.context} "
                    f"-n {self.namespace} describe pods -l app.kubernetes.io/name={name}`.",
                )
            time.sleep(0.1)

    def _pod_story(self, agent: str) -> str:
        """The agent's first unready pod: its waiting reason and latest events."""
        kubectl = self.backend.kubectl()
        try:
            pods = kubectl.get_pods(self.namespace, f"app.kubernetes.io/name={agent}")
        except (CommandFailed, CommandTimeout, OperationFailed):
            return "."
        unready = [p for p in pods if not p.ready]
        if not unready:
            return "."
        pod = unready[0]
        events = kubectl.recent_events(self.namespace, pod.name)
        reason = f", waiting: {pod.waiting_reason}" if pod.waiting_reason else ""
        shown = "; ".join(events) if events else "no events"
        return f"; pod {pod.name} ({pod.phase}{reason}): {shown}."

    def _diagnose(
        self, deployments: Sequence[AgentDeployment], exc: BaseException
    ) -> OperationFailed:
        """Name the agent that kept the rollout from finishing, with its pod's story."""
        kubectl = self.backend.kubectl()
        try:
            pods = kubectl.get_pods(self.namespace, AGENTS_SELECTOR)
        except (CommandFailed, CommandTimeout, OperationFailed):
            pods = []
        for d in deployments:
            mine = [p for p in pods if p.name.startswith(f"{d.name}-") and not p.ready]
            if mine:
                return OperationFailed(
                    f"Agent '{d.name}' did not become ready, so the agents release was rolled "
                    f"back (the previous version keeps serving)" + self._pod_story(d.name),
                    hint=f"`pallet-dev logs {d.name}`; check its port ({d.port}) and health "
                    f"path ({d.health}).",
                )
        message = getattr(exc, "message", str(exc))
        return OperationFailed(
            f"Deploying the agents failed: {message}",
            hint=getattr(exc, "hint", None)
            or f"See `kubectl --context {self.backend.context} -n {self.namespace} get pods`.",
        )

    def status(self) -> list[dict[str, Any]]:
        kubectl = self.backend.kubectl()
        deployments = kubectl.get_deployments(self.namespace, AGENTS_SELECTOR)
        pods = kubectl.get_pods(self.namespace, AGENTS_SELECTOR)
        report = []
        for item in deployments:
            name = str((item.get("metadata") or {}).get("name", ""))
            spec = item.get("spec") or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
            image = str(containers[0].get("image", ""))
            status = item.get("status") or {}
            mine = [p for p in pods if p.name.startswith(f"{name}-")]
            report.append(
                {
                    "name": name,
                    "image": image,
                    "digest": image.split("@", 1)[1] if "@" in image else None,
                    "desired": int(spec.get("replicas") or 0),
                    "ready": int(status.get("readyReplicas") or 0),
                    "restarts": sum(p.restarts for p in mine),
                    "endpoint": f"{name}.{self.namespace}.svc.cluster.local",
                }
            )
        return report

    def logs_argv(self, agent: str, *, follow: bool, tail: int | None) -> list[str]:
        return self.backend.kubectl().logs_argv(
            self.namespace, f"deployment/{agent}", follow=follow, tail=tail
        )


def write_secret_files(folder: Path, files: Mapping[str, bytes]) -> dict[str, str]:
    """Credentials as 0600 files in a 0700 folder (rewritten only when they changed);
    each name to its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    paths: dict[str, str] = {}
    for name, content in files.items():
        path = folder / name
        paths[name] = str(path)
        if path.is_file() and path.read_bytes() == content:
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
    return paths


def _left(deadline: float, cap: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ReadinessTimeout(
            "The --timeout deadline passed before the agents were deployed.",
            hint="Retry with a larger --timeout.",
        )
    return min(remaining, cap)
