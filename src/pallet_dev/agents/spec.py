"""What both backends deploy for an agent: the same image digest and the same environment.

`PALLET_REGISTRY` is the one value that differs, by design: the registry's address as
seen from inside the agent (the registry container's name on the Docker backend's
network, the registry Service's DNS name on kind).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # no pydantic on the Docker backend's fast path
    from pallet_dev.agents.images import AgentImage
    from pallet_dev.settings import AgentSettings


@dataclass(frozen=True)
class AgentDeployment:
    name: str
    image: str  # <registry>/<env>/<agent>@sha256:...
    digest: str
    port: int
    health: str
    replicas: int
    env: Mapping[str, str]
    memory: str | None = None
    cpu: str | None = None
    host_port: int | None = None


def agent_environment(agent: AgentSettings, env_name: str, registry_address: str) -> dict[str, str]:
    return {
        **agent.env,
        "PALLET_AGENT": agent.name,
        "PALLET_ENVIRONMENT": env_name,
        "PALLET_REGISTRY": registry_address,
    }


def deployments(
    agents: Sequence[AgentSettings],
    images: Sequence[AgentImage],
    *,
    env_name: str,
    registry_address: str,
) -> list[AgentDeployment]:
    by_name = {image.agent: image for image in images}
    return [
        AgentDeployment(
            name=agent.name,
            image=by_name[agent.name].ref,
            digest=by_name[agent.name].digest,
            port=agent.port,
            health=agent.health,
            replicas=agent.replicas,
            env=agent_environment(agent, env_name, registry_address),
            memory=agent.resources.memory,
            cpu=agent.resources.cpu,
            host_port=agent.host_port,
        )
        for agent in agents
    ]


@dataclass(frozen=True)
class AgentEndpoint:
    """Where `health` finds one deployed agent (kept in the environment's state file)."""

    name: str
    backend: str
    desired: int
    urls: tuple[str, ...] = ()  # docker: one published URL per replica
    # kind: the API server's service proxy URL and the Deployment's API path
    proxy_url: str | None = None
    deployment_url: str | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "desired": self.desired,
            "urls": list(self.urls),
            "proxy_url": self.proxy_url,
            "deployment_url": self.deployment_url,
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentEndpoint:
        return cls(
            name=str(data["name"]),
            backend=str(data["backend"]),
            desired=int(data["desired"]),
            urls=tuple(str(url) for url in data.get("urls") or ()),
            proxy_url=data.get("proxy_url"),
            deployment_url=data.get("deployment_url"),
            digest=data.get("digest"),
        )


@dataclass(frozen=True)
class ApiAccess:
    """How `health` reaches a cluster's API server without a subprocess."""

    server: str
    ca_file: str  # "": the system's CAs
    cert_file: str  # "" with key_file: no client certificate
    key_file: str
    token_file: str | None = None  # a bearer token (a ServiceAccount's, on a shared cluster)
    insecure: bool = False  # the kubeconfig's insecure-skip-tls-verify
    # the kubeconfig's `exec` credential plugin (EKS, GKE, OIDC): its tokens expire, so
    # `health` runs it (argv, env) for a fresh one each time instead of keeping a token
    exec_argv: Sequence[str] = ()
    exec_env: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "server": self.server,
            "ca_file": self.ca_file,
            "cert_file": self.cert_file,
            "key_file": self.key_file,
        }
        if self.token_file:
            data["token_file"] = self.token_file
        if self.insecure:
            data["insecure"] = True
        if self.exec_argv:
            data["exec_argv"], data["exec_env"] = list(self.exec_argv), dict(self.exec_env)
        return data


@dataclass(frozen=True)
class AgentsState:
    """What `up` deployed, recorded for `health` and `status`."""

    endpoints: list[AgentEndpoint] = field(default_factory=list)
    api: ApiAccess | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "agents": [endpoint.to_dict() for endpoint in self.endpoints],
            "api": self.api.to_dict() if self.api else None,
        }
