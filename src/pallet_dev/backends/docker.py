"""The Docker backend: the registry as one labelled container with a named volume."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pallet_dev.backends.base import (
    Backend,
    BackendStatus,
    DataLocation,
    DownResult,
    GcResult,
    Plan,
    PlanStep,
    UpOptions,
    UpResult,
)
from pallet_dev.backends.docker_agents import DockerAgents
from pallet_dev.backends.docker_mirrors import DockerMirrors
from pallet_dev.backends.steps import Deadline, Step, StepFailureNaming, plan_steps, run_steps
from pallet_dev.chart.constants import CONTAINER_PORT
from pallet_dev.config_sources import host_port
from pallet_dev.errors import CommandFailed, OperationFailed
from pallet_dev.output import Steps
from pallet_dev.ports import ensure_port_free, port_is_free
from pallet_dev.probe import probe, registry_target
from pallet_dev.tools.docker import (
    LABEL_ENV,
    LABEL_MANAGED,
    LABEL_SPEC,
    ContainerExists,
    Docker,
)
from pallet_dev.tools.docker_types import ContainerInfo, ContainerSpec, VolumeMount

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from pallet_dev.agents.spec import AgentDeployment, AgentsState
    from pallet_dev.backends.base import MirrorGc

REGISTRY_DATA_PATH = "/var/lib/registry"
REGISTRY_ENV = {
    # distribution 3.x exports traces to localhost:4318 unless told not to
    "OTEL_TRACES_EXPORTER": "none",
    "REGISTRY_STORAGE_DELETE_ENABLED": "true",
    # finish in-flight uploads on `docker stop` (SIGTERM) instead of cutting them
    "REGISTRY_HTTP_DRAINTIMEOUT": "5s",
}


@dataclass
class DockerUp:
    """One run of `up` (or its plan) on Docker, and what its steps found."""

    options: UpOptions
    spec: ContainerSpec
    deadline: Deadline
    ui: Steps
    docker: Docker
    actions: list[str] = field(default_factory=list)
    created: bool = False  # the optimistic `docker run` made the container
    # the caches' containers, inspected with the registry's (None: not inspected)
    mirror_infos: dict[str, ContainerInfo] | None = None
    healthy: bool = False  # it was running and answering already: nothing to do


class DockerBackend(Backend):
    name = "docker"

    @property
    def docker(self) -> Docker:
        return Docker(self.runner)

    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_ENV: self.config.name}

    def container_spec(self) -> ContainerSpec:
        registry = self.config.registry
        base = ContainerSpec(
            name=self.config.container_name,
            image=registry.image,
            labels=self.labels(),
            publish=[f"{host_port(registry.bind_address, registry.port)}:{CONTAINER_PORT}"],
            volumes=[VolumeMount(self.config.volume_name, REGISTRY_DATA_PATH, self.labels())],
            env=REGISTRY_ENV,
        )
        # the spec hash lets `up` tell "same container" from "configuration changed"
        digest = hashlib.sha256(json.dumps(base.run_argv(), sort_keys=True).encode()).hexdigest()[
            :16
        ]
        return ContainerSpec(
            name=base.name,
            image=base.image,
            labels={**base.labels, LABEL_SPEC: digest},
            publish=base.publish,
            volumes=base.volumes,
            env=base.env,
        )

    def ours(self, info: ContainerInfo) -> bool:
        return info.labels.get(LABEL_MANAGED) == "true" and (
            info.labels.get(LABEL_ENV) == self.config.name
        )

    # --- up: one list of steps, planned by --dry-run and run by up ----------------------
    def up_steps(self) -> tuple[Step[DockerUp], ...]:
        """Optimistic create: in the common cold case (port free, nothing of ours) one
        `docker run` does it all; a name conflict or a busy port sends `up` to inspect
        what is there and reuse, start or replace it."""
        return (
            Step("Starting the registry container", self._plan_create, self._create_if_free),
            Step("Reconciling the existing container", self._plan_reconcile, self._reconcile),
            Step("Waiting for the registry", self._plan_wait, self._wait),
            Step("Pull-through caches", self._plan_mirrors, self._mirrors),
        )

    def _start(self, options: UpOptions, ui: Steps) -> DockerUp:
        return DockerUp(options, self.container_spec(), Deadline(options.timeout), ui, self.docker)

    def plan_up(self, options: UpOptions) -> Plan:
        run = self._start(options, Steps(quiet=True))
        return Plan(backend=self.name, steps=plan_steps(self.up_steps(), run))

    def up(self, options: UpOptions, steps: Steps) -> UpResult:
        run = self._start(options, steps)
        run_steps(self.up_steps(), run, StepFailureNaming("See `docker ps -a`."), max_parallel=1)
        return UpResult(self.name, self.endpoint, not run.healthy, run.actions)

    def _plan_create(self, run: DockerUp) -> list[PlanStep]:
        return [
            PlanStep(
                "Start the registry container (never pulls; creates the data volume, which"
                " `down` keeps)",
                run.spec.run_argv(),
            ),
            PlanStep(
                "Pull the image, only if `docker run` found it missing",
                ["docker", "pull", self.config.registry.image],
            ),
        ]

    def _create_if_free(self, run: DockerUp) -> None:
        registry = self.config.registry
        if run.options.recreate or not port_is_free(registry.bind_address, registry.port):
            return
        from pallet_dev import preflight

        # before anything is created: a localhost that cannot reach 127.0.0.1 (exit 3)
        preflight.enforce(
            preflight.localhost_findings(registry.bind_address, registry.port), run.ui.warn
        )
        if self._create(run):
            run.created = True
            run.actions.append("created-container")

    def _plan_reconcile(self, run: DockerUp) -> list[PlanStep]:
        return [
            PlanStep(
                "Only if the name is taken or the port busy: inspect it, then reuse, start"
                " or replace (keeping the volume) what is there",
                ["docker", "container", "inspect", run.spec.name],
            )
        ]

    def _reconcile(self, run: DockerUp) -> None:
        if run.created:
            return
        docker, spec, steps = run.docker, run.spec, run.ui
        registry = self.config.registry
        # one call for the registry and the caches (an unchanged `up` asks nothing else)
        names = self.mirrors.names()
        if names:
            found = docker.inspect_containers([spec.name, *names])
            info = found.pop(spec.name, None)
            run.mirror_infos = found
        else:
            info = docker.inspect_container(spec.name)
        if info is not None and not self.ours(info):
            raise OperationFailed(
                f"A container named '{spec.name}' exists but was not created by pallet-dev.",
                hint=f"Remove or rename it (`docker rm -f {spec.name}`), or set another "
                "environment name in pallet-dev.yaml (name: ...).",
            )
        changed = info is not None and info.labels.get(LABEL_SPEC) != spec.labels[LABEL_SPEC]
        if info is not None and (run.options.recreate or changed):
            reason = "--recreate" if run.options.recreate else "its configuration changed"
            with steps.step(f"Replacing the registry container ({reason}; data kept)"):
                docker.remove(spec.name)
            run.actions.append("removed-container")
            info = None
        if info is not None and info.running:
            # fast path: already up; a healthy answer means nothing to do
            result = probe(registry_target(self.endpoint), timeout=1.0)
            if result.healthy:
                steps.done(f"Registry already running at {self.endpoint}")
                run.healthy = True
                return
        elif info is not None:
            ensure_port_free(registry.bind_address, registry.port, self.runner)
            with steps.step("Starting the stopped registry container"):
                docker.start(spec.name)
            run.actions.append("started-container")
        else:
            ensure_port_free(registry.bind_address, registry.port, self.runner)
            if not self._create(run):
                raise OperationFailed(
                    f"Another process created a container named '{spec.name}' meanwhile.",
                    hint="Run `pallet-dev up` again.",
                )
            run.actions.append("created-container")

    def _plan_wait(self, run: DockerUp) -> list[PlanStep]:
        detail = (
            f"GET {self.endpoint}/v2/ until 200 with Docker-Distribution-Api-Version: "
            f"registry/2.0, at most {run.options.timeout:g} s"
        )
        return [PlanStep("Wait for the registry", [], detail=detail)]

    def _wait(self, run: DockerUp) -> None:
        if run.healthy:
            return  # already running and answering: nothing changed
        self.await_registry(
            run.ui,
            run.deadline.at,
            run.options.timeout,
            hint=f"See `docker logs {run.spec.name}`; retry with a larger --timeout.",
        )

    @property
    def mirrors(self) -> DockerMirrors:
        return DockerMirrors(self.docker, self.config, self.paths)

    def _plan_mirrors(self, run: DockerUp) -> list[PlanStep]:
        return self.mirrors.plan()

    def _mirrors(self, run: DockerUp) -> None:
        mirrors = self.mirrors
        actions = mirrors.ensure(
            run.deadline,
            run.ui,
            lambda: self.agents.ensure_network(None, run.ui),
            known=run.mirror_infos,
            recreate=run.options.recreate,
        )
        run.actions += actions
        if "started-mirrors" in actions:
            run.healthy = False
            # said when the cache starts, not on every `up` (doctor says it any time)
            advice = mirrors.daemon_advice()
            if advice is not None:
                run.ui.note(advice)

    def _create(self, run: DockerUp) -> bool:
        """Run the container; False (nothing created) when the name is taken."""
        started = time.monotonic()
        try:
            # `docker run` creates the volume when missing; an existing one is kept as is
            self._run_container(run)
        except ContainerExists:
            return False
        except BaseException:
            run.ui.failed("Starting the registry container")
            raise
        run.ui.done(
            f"Started the registry container (data in volume {self.config.volume_name})",
            time.monotonic() - started,
        )
        return True

    def _run_container(self, run: DockerUp) -> None:
        docker, spec = run.docker, run.spec
        try:
            docker.run_pulling(
                spec,
                pull_timeout=max(30.0, run.deadline.remaining()),
                on_pull=lambda image: run.ui.note(
                    f"Image {image} is not present locally; pulling it"
                ),
            )
        except CommandFailed:
            # `docker run` can leave a created-but-not-started container
            docker.remove(spec.name)
            raise

    # --- agents ------------------------------------------------------------------------
    @cached_property
    def agents(self) -> DockerAgents:
        # one for the backend's life: `dev` reuses what its last deploy learnt
        return DockerAgents(self.docker, self.config.name)

    @property
    def agent_registry_address(self) -> str:
        return self.agents.registry_address

    @property
    def network_pull_host(self) -> str | None:
        # containers on the environment's network reach the registry by its name
        return self.agents.registry_address

    def plan_agents(self, deployments: list[AgentDeployment], options: UpOptions) -> list[PlanStep]:
        return self.agents.plan(deployments)

    def look_ahead_agents(self) -> None:
        self.agents.look_ahead()

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
        return self.agents.roll_out(deployments, changed, deadline, steps)

    def agents_status(self) -> list[dict[str, Any]]:
        return self.agents.status()

    def agent_logs_argv(self, agent: str, *, follow: bool, tail: int | None) -> list[str]:
        return self.agents.logs_argv(agent, follow=follow, tail=tail)

    def down(self, *, clean: bool, steps: Steps) -> DownResult:
        docker = self.docker
        removed: list[str] = self.agents.remove_containers(steps)
        kept: list[str] = []
        name = self.config.container_name
        info = docker.inspect_container(name)
        if info is not None and not self.ours(info):
            raise OperationFailed(
                f"A container named '{name}' exists but was not created by pallet-dev; "
                "leaving it alone.",
                hint="Remove it yourself if it is not needed.",
            )
        if info is not None:
            with steps.step(f"Removing container {name}"):
                docker.remove(name)
            removed.append(f"container {name}")
        gone, kept_caches = self.mirrors.remove(clean=clean, steps=steps)
        removed += gone
        removed += self.agents.remove_network(steps)
        volume = self.config.volume_name
        if clean:
            if docker.volume_exists(volume):
                with steps.step(f"Removing data volume {volume}"):
                    docker.volume_remove(volume)
                removed.append(f"volume {volume}")
        elif docker.volume_exists(volume):
            kept.append(f"volume {volume}")
        return DownResult(self.name, removed, kept + kept_caches)

    # --- gc: with the registry container stopped, nothing can push --------------------
    def registry_data_size(self) -> int | None:
        volume = self.config.volume_name
        docker = self.docker
        return docker.volume_size_bytes(volume) if docker.volume_exists(volume) else None

    def plan_collect_garbage(self, *, delete_untagged: bool) -> list[PlanStep]:
        from pallet_dev.backends import docker_gc

        return docker_gc.plan(self, delete_untagged=delete_untagged)

    def collect_garbage(self, *, delete_untagged: bool, steps: Steps, timeout: float) -> GcResult:
        from pallet_dev.backends import docker_gc

        return docker_gc.collect(
            self, delete_untagged=delete_untagged, steps=steps, timeout=timeout
        )

    def volume_sizes(self) -> dict[str, int]:
        """Every volume's size (the registry's, the caches'); empty when Docker cannot say
        now (another disk-usage run)."""
        try:
            return self.docker.volume_sizes()
        except (CommandFailed, OperationFailed):
            return {}

    def status(self) -> BackendStatus:
        docker = self.docker
        volume = self.config.volume_name
        info = docker.inspect_container(self.config.container_name)
        volume_exists = docker.volume_exists(volume)
        report: dict[str, Any] = {
            "exists": info is not None,
            "container": None,
            "volume": {"name": volume, "exists": volume_exists},
            "endpoint": self.endpoint,
        }
        if info is not None:
            report["container"] = {
                "name": info.name,
                "id": info.id[:12],
                "state": info.status,
                "image": info.image,
                "image_id": info.image_id,
                "ports": [
                    f"{port.host_ip or '0.0.0.0'}:{port.host_port}->{port.container_port}"
                    for port in info.ports
                ],
                "restart_count": info.restart_count,
                "started_at": info.started_at,
                "managed": self.ours(info),
            }
        mirrors = self.mirrors
        cache_infos = mirrors.existing() if self.config.mirrors else {}
        cache_volumes = mirrors.volumes() if self.config.mirrors else []
        # one `docker system df` for the registry and the caches (the daemon runs one at a
        # time and refuses another caller's meanwhile), and only when a volume exists
        sizes = self.volume_sizes() if volume_exists or cache_volumes else {}
        data = None
        if volume_exists:
            size = sizes.get(volume)
            report["volume"]["size_bytes"] = size
            data = DataLocation(f"volume {volume}", f"data volume {volume}", size)
        image = info.image if info is not None else None
        caches = mirrors.status(cache_infos, sizes)
        return BackendStatus(info is not None, report, image=image, data=data, mirrors=caches)

    # --- gc --mirrors: each cache container stopped while its volume changes ----------
    def plan_clean_mirrors(self, *, older_than: timedelta | None, now: datetime) -> list[MirrorGc]:
        from pallet_dev.backends import docker_mirrors_gc

        return docker_mirrors_gc.plan(self, older_than=older_than, now=now)

    def clean_mirrors(
        self, *, older_than: timedelta | None, now: datetime, steps: Steps, timeout: float
    ) -> list[MirrorGc]:
        from pallet_dev.backends import docker_mirrors_gc

        return docker_mirrors_gc.clean(
            self, older_than=older_than, now=now, steps=steps, timeout=timeout
        )
