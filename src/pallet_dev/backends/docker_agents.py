"""Agents on the Docker backend: one labelled container per replica on network ``<env>``.

The registry container joins the same network, so an agent reaches it as
``<env>-registry:5000`` (``PALLET_REGISTRY``). Each replica publishes its port on
127.0.0.1: ``host_port`` (+ replica index) when configured, else a port Docker picks
on the first start and pallet-dev keeps on every later replacement. A container is
replaced only when its spec (image digest, env, port, limits) changed, so an
unchanged `up` touches nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from pallet_dev.agents.spec import AgentDeployment, AgentEndpoint, AgentsState
from pallet_dev.backends.base import PlanStep
from pallet_dev.chart.constants import CONTAINER_PORT
from pallet_dev.config_sources import container_name_for
from pallet_dev.errors import OperationFailed, PortInUse, ReadinessTimeout
from pallet_dev.output import Steps
from pallet_dev.ports import port_is_free
from pallet_dev.probe import ANY_2XX, ProbeTarget, probe
from pallet_dev.tools.docker import (
    LABEL_AGENT,
    LABEL_ENV,
    LABEL_MANAGED,
    LABEL_SPEC,
    ContainerExists,
    Docker,
)
from pallet_dev.tools.docker_types import ContainerInfo, ContainerSpec

LABEL_REPLICA = "dev.pallet.replica"
BIND = "127.0.0.1"
_QUANTITY_UNITS = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def container_name(env_name: str, agent: str, replica: int) -> str:
    base = f"{env_name}-agent-{agent}"
    return base if replica == 1 else f"{base}-{replica}"


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (128Mi, 1G, 500000) in bytes, for `docker run --memory`."""
    number = quantity.rstrip("kMGTi")
    unit = quantity[len(number) :]
    if unit == "m":  # milli-bytes: meaningless for memory, round up to a byte
        return max(1, int(float(number) / 1000))
    return int(float(number) * _QUANTITY_UNITS[unit])


def cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity (500m, 1, 0.5) as `docker run --cpus`."""
    if quantity.endswith("m"):
        return f"{float(quantity[:-1]) / 1000:g}"
    return f"{float(quantity):g}"


class DockerAgents:
    def __init__(self, docker: Docker, env_name: str) -> None:
        self.docker = docker
        self.env_name = env_name
        # each replica container's host port as the last deploy left it (by name), so
        # `dev` replaces a changed agent's containers without listing and inspecting all
        self.host_ports: dict[str, int] = {}
        self._ahead: Future[dict[str, ContainerInfo]] | None = None

    @property
    def network(self) -> str:
        return self.env_name

    @property
    def registry(self) -> str:
        """The registry container's name."""
        return container_name_for(self.env_name)

    @property
    def registry_address(self) -> str:
        """The registry as an agent on the network sees it."""
        return f"{self.registry}:{CONTAINER_PORT}"

    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_ENV: self.env_name}

    def spec(
        self, deployment: AgentDeployment, replica: int, host_port: int | None
    ) -> ContainerSpec:
        extra: list[str] = []
        if deployment.memory:
            extra += ["--memory", str(memory_bytes(deployment.memory))]
        if deployment.cpu:
            extra += ["--cpus", cpus(deployment.cpu)]
        labels = {
            **self.labels(),
            LABEL_AGENT: deployment.name,
            LABEL_REPLICA: str(replica),
        }
        spec = ContainerSpec(
            name=container_name(self.env_name, deployment.name, replica),
            image=deployment.image,
            labels=labels,
            publish=[f"{BIND}:{host_port or ''}:{deployment.port}"],
            volumes=[],
            env=deployment.env,
            network=self.network,
            extra=extra,
        )
        # the hash leaves out a host port Docker chose: keeping it is not a change
        chosen = deployment.host_port is not None
        basis = spec.run_argv() if chosen else replace(spec, publish=[]).run_argv()
        digest = hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]
        return replace(spec, labels={**labels, LABEL_SPEC: digest})

    def plan(self, deployments: Sequence[AgentDeployment]) -> list[PlanStep]:
        steps = [
            PlanStep(
                f"Create network {self.network} (when missing) and connect the registry to it",
                self.docker.network_create_argv(self.network, self.labels()),
                detail=f"then `docker network connect {self.network} {self.registry}`; "
                f"agents reach the registry as {self.registry_address}",
            )
        ]
        for deployment in deployments:
            for replica in range(1, deployment.replicas + 1):
                port = deployment.host_port + replica - 1 if deployment.host_port else None
                steps.append(
                    PlanStep(
                        f"Run agent '{deployment.name}' replica {replica} (only when its spec "
                        "changed; by digest)",
                        self.spec(deployment, replica, port).run_argv(),
                    )
                )
            steps.append(
                PlanStep(
                    f"Wait for agent '{deployment.name}'",
                    [],
                    detail=f"GET http://{BIND}:<host-port>{deployment.health} until 2xx",
                )
            )
        return steps

    # --- deploy --------------------------------------------------------------------------
    def look_ahead(self) -> None:
        """Read the containers (as deploy does first) while the images build."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="pallet-containers")
        self._ahead = pool.submit(self._containers)
        pool.shutdown(wait=False)

    def _containers(self) -> dict[str, ContainerInfo]:
        # one inspect for the registry and every agent container: an unchanged `up` makes
        # two docker calls here (list, inspect) and nothing else
        docker = self.docker
        return docker.inspect_containers(
            [self.registry, *docker.containers_with_labels(self.labels(), key=LABEL_AGENT)]
        )

    def deploy(
        self, deployments: Sequence[AgentDeployment], deadline: float, steps: Steps
    ) -> AgentsState:
        docker = self.docker
        registry = self.registry
        ahead, self._ahead = self._ahead, None
        existing = ahead.result() if ahead is not None else self._containers()
        registry_info = existing.pop(registry, None)
        wanted: dict[str, tuple[AgentDeployment, int]] = {
            container_name(self.env_name, d.name, replica): (d, replica)
            for d in deployments
            for replica in range(1, d.replicas + 1)
        }
        attached = registry_info is not None and self.network in registry_info.networks
        if not attached or any(
            name not in existing or self.network not in existing[name].networks for name in wanted
        ):
            self.ensure_network(registry_info, steps)
        for name in sorted(set(existing) - set(wanted)):
            with steps.step(f"Removing container {name} (no longer configured)"):
                docker.remove(name)
        changed: set[str] = set()
        # host ports already known (kept or configured); others Docker picks at `run`
        ports: dict[str, int | None] = {}
        for name, (deployment, replica) in wanted.items():
            ports[name] = self._host_port(deployment, replica, existing.get(name))
            if self._converge(name, deployment, replica, existing.get(name), steps):
                changed.add(deployment.name)
        if any(port is None for port in ports.values()):
            found = docker.inspect_containers([n for n, p in ports.items() if p is None])
            for name, info in found.items():
                deployment, _ = wanted[name]
                ports[name] = info.host_port(deployment.port)
        endpoints = self._endpoints(deployments, ports)
        self.host_ports = {name: port for name, port in ports.items() if port is not None}
        for deployment, endpoint in zip(deployments, endpoints):
            if deployment.name in changed:
                with steps.step(f"Waiting for agent '{deployment.name}' at {endpoint.urls[0]}"):
                    self._await_healthy(deployment, endpoint, deadline)
            else:
                self._await_healthy(deployment, endpoint, deadline)
                steps.done(f"Agent '{deployment.name}' unchanged and healthy")
        return AgentsState(endpoints)

    def _endpoints(
        self, deployments: Sequence[AgentDeployment], ports: dict[str, int | None]
    ) -> list[AgentEndpoint]:
        endpoints: list[AgentEndpoint] = []
        for deployment in deployments:
            urls = []
            for replica in range(1, deployment.replicas + 1):
                port = ports.get(container_name(self.env_name, deployment.name, replica))
                if port is None:
                    raise OperationFailed(
                        f"Agent '{deployment.name}' replica {replica} publishes no host port.",
                        hint="Run `pallet-dev up` again; see `docker ps -a`.",
                    )
                urls.append(f"http://{BIND}:{port}{deployment.health}")
            endpoint = AgentEndpoint(
                deployment.name,
                "docker",
                deployment.replicas,
                tuple(urls),
                digest=deployment.digest,
            )
            endpoints.append(endpoint)
        return endpoints

    def roll_out(
        self,
        deployments: Sequence[AgentDeployment],
        changed: Sequence[str],
        deadline: float,
        steps: Steps,
    ) -> AgentsState:
        """`dev`: only the ``changed`` agents' images moved since this object's last
        deploy. Their containers are replaced on the host ports that deploy left them
        (the same `docker rm -f` + `docker run` as deploy, without first listing and
        inspecting every container); without such a deploy, a full one."""
        names = {
            container_name(self.env_name, d.name, replica): (d, replica)
            for d in deployments
            for replica in range(1, d.replicas + 1)
        }
        if not self.host_ports or not set(names) <= set(self.host_ports):
            return self.deploy(deployments, deadline, steps)
        for name, (deployment, replica) in names.items():
            if deployment.name not in changed:
                continue
            spec = self.spec(deployment, replica, self.host_ports[name])
            with steps.step(
                f"Replacing agent '{deployment.name}' ({name}, {deployment.digest[:19]})"
            ):
                self.docker.remove(name)
                self._run(spec)
        endpoints = self._endpoints(deployments, dict(self.host_ports))
        for deployment, endpoint in zip(deployments, endpoints):
            if deployment.name in changed:
                with steps.step(f"Waiting for agent '{deployment.name}' at {endpoint.urls[0]}"):
                    self._await_healthy(deployment, endpoint, deadline)
        return AgentsState(endpoints)

    def ensure_network(self, registry: ContainerInfo | None, steps: Steps) -> None:
        docker = self.docker
        labels = docker.network_labels(self.network)
        if labels is None:
            with steps.step(f"Creating network {self.network}"):
                docker.network_create(self.network, self.labels())
        elif labels.get(LABEL_ENV) != self.env_name:
            raise OperationFailed(
                f"A Docker network named '{self.network}' exists but was not created by "
                "pallet-dev.",
                hint=f"Remove it (`docker network rm {self.network}`) or set another "
                "environment name (name: in pallet-dev.yaml).",
            )
        if registry is not None and self.network not in registry.networks:
            with steps.step(f"Connecting the registry to network {self.network}"):
                docker.network_connect(self.network, registry.name)

    def _converge(
        self,
        name: str,
        deployment: AgentDeployment,
        replica: int,
        info: ContainerInfo | None,
        steps: Steps,
    ) -> bool:
        """Make one replica's container match; True when it was (re)started."""
        port = self._host_port(deployment, replica, info)
        spec = self.spec(deployment, replica, port)
        if info is not None and info.labels.get(LABEL_SPEC) == spec.labels[LABEL_SPEC]:
            if info.running:
                return False
            with steps.step(f"Starting the stopped container {name}"):
                self.docker.start(name)
            return True
        verb = "Replacing" if info is not None else "Starting"
        with steps.step(f"{verb} agent '{deployment.name}' ({name}, {deployment.digest[:19]})"):
            if info is not None:
                self.docker.remove(name)
            if deployment.host_port is not None and port and not port_is_free(BIND, port):
                raise PortInUse(
                    f"Agent '{deployment.name}' needs host port {port}, which is in use.",
                    hint=f"Free port {port} or change agents[].host_port in pallet-dev.yaml "
                    "(or remove it: pallet-dev then picks a free port).",
                )
            self._run(spec)
        return True

    @staticmethod
    def _host_port(
        deployment: AgentDeployment, replica: int, info: ContainerInfo | None
    ) -> int | None:
        """The configured port, else the one the existing container has (kept), else None."""
        if deployment.host_port is not None:
            return deployment.host_port + replica - 1
        return info.host_port(deployment.port) if info else None

    def _run(self, spec: ContainerSpec) -> None:
        try:
            self.docker.run_pulling(spec, pull_timeout=300)
        except ContainerExists:
            self.docker.remove(spec.name)
            self.docker.run_pulling(spec, pull_timeout=300)

    def _await_healthy(
        self, deployment: AgentDeployment, endpoint: AgentEndpoint, deadline: float
    ) -> None:
        for replica, url in enumerate(endpoint.urls, 1):
            target = ProbeTarget(deployment.name, url, ANY_2XX)
            started = time.monotonic()
            while True:
                result = probe(target, timeout=max(0.2, min(2.0, deadline - time.monotonic())))
                if result.healthy:
                    break
                if time.monotonic() + 0.05 >= deadline:
                    name = container_name(self.env_name, deployment.name, replica)
                    logs = self.docker.logs_tail(name, 15)
                    raise ReadinessTimeout(
                        f"Agent '{deployment.name}' did not answer {url} with 2xx in time "
                        f"(last probe: {result.error or result.status_code}); its last log "
                        f"lines:\n{logs or '(none)'}",
                        hint=f"Check that it listens on port {deployment.port} and serves "
                        f"{deployment.health}; `pallet-dev logs {deployment.name}`.",
                    )
                # a started container answers within a few hundred milliseconds and a
                # refused local connect costs microseconds: poll tightly at first
                time.sleep(0.01 if time.monotonic() - started < 2.0 else 0.05)

    # --- down / status / logs ----------------------------------------------------------
    def remove_containers(self, steps: Steps) -> list[str]:
        """Every agent container of the environment (their images stay in the registry)."""
        docker = self.docker
        removed: list[str] = []
        for name in docker.containers_with_labels(self.labels(), key=LABEL_AGENT):
            with steps.step(f"Removing agent container {name}"):
                docker.remove(name)
            removed.append(f"container {name}")
        return removed

    def remove_network(self, steps: Steps) -> list[str]:
        """The environment's network, once nothing of ours is attached to it."""
        labels = self.docker.network_labels(self.network)
        if labels is None or labels.get(LABEL_ENV) != self.env_name:
            return []
        with steps.step(f"Removing network {self.network}"):
            self.docker.network_remove(self.network)
        return [f"network {self.network}"]

    def status(self) -> list[dict[str, Any]]:
        """Per agent: image digest, running/desired containers, restarts, endpoints."""
        docker = self.docker
        infos = docker.inspect_containers(
            docker.containers_with_labels(self.labels(), key=LABEL_AGENT)
        )
        by_agent: dict[str, list[ContainerInfo]] = {}
        for info in sorted(infos.values(), key=lambda i: i.name):
            by_agent.setdefault(info.labels.get(LABEL_AGENT, "?"), []).append(info)
        report = []
        for agent, containers in by_agent.items():
            image = containers[0].image
            endpoints = [
                f"http://{BIND}:{port}" for info in containers for port in info.published.values()
            ]
            report.append(
                {
                    "name": agent,
                    "image": image,
                    "digest": image.split("@", 1)[1] if "@" in image else None,
                    "desired": len(containers),
                    "ready": sum(1 for info in containers if info.running),
                    "restarts": sum(info.restart_count for info in containers),
                    "containers": [info.name for info in containers],
                    "endpoint": endpoints[0] if endpoints else None,
                    "endpoints": endpoints,
                }
            )
        return report

    def logs_argv(self, agent: str, *, follow: bool, tail: int | None) -> list[str]:
        name = container_name(self.env_name, agent, 1)
        if self.docker.inspect_container(name) is None:
            raise OperationFailed(
                f"Agent '{agent}' is not running in environment '{self.env_name}': there is "
                f"no container {name}.",
                hint="Start it with `pallet-dev up`; `pallet-dev status` shows what runs.",
            )
        return Docker.logs_argv(name, follow=follow, tail=tail)
