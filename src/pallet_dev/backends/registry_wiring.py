"""How a kind cluster's nodes and tools find the local registry.

containerd on each node resolves ``localhost:<port>/...`` through a ``hosts.toml``
(:func:`hosts_toml`), and the KEP-1755 ConfigMap (:func:`local_registry_hosting`) tells
Tilt, Skaffold and ctlptl where to push and what to write in image fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pallet_dev.config_sources import registry_push_host
from pallet_dev.tools.kind import CONTAINERD_CERTS_DIR

if TYPE_CHECKING:
    from pallet_dev.settings import Settings

# KEP-1755: how tools (Tilt, Skaffold, ctlptl) discover a cluster's local registry.
LOCAL_REGISTRY_HOSTING_NAMESPACE = "kube-public"
LOCAL_REGISTRY_HOSTING_NAME = "local-registry-hosting"
LOCAL_REGISTRY_HOSTING_KEY = "localRegistryHosting.v1"
LOCAL_REGISTRY_HOSTING_HELP = "https://kind.sigs.k8s.io/docs/user/local-registry/"


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


def mirror_hosts_toml(upstream: str, remote_url: str, node: str, node_port: int) -> str:
    """containerd's config for ``<upstream>/...``: the cache first, then the upstream.

    The cache is reached like the registry (its NodePort on the node's own name, plain
    HTTP); ``server`` is where containerd falls back when the cache fails. Image names in
    pods stay ``<upstream>/...``.
    """
    return (
        f"# Written by pallet-dev: pulls of {upstream}/... try its pull-through cache (NodePort\n"
        f"# {node_port} on this node) first, then {remote_url} itself.\n"
        f'server = "{remote_url}"\n'
        "\n"
        f'[host."http://{node}:{node_port}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )


def mirror_hosts_toml_path(upstream: str) -> str:
    return f"{CONTAINERD_CERTS_DIR}/{upstream}/hosts.toml"


def registry_host(config: Settings) -> str:
    """Where tools on this machine push: ``localhost:<port>`` unless bound elsewhere."""
    return registry_push_host(config.registry.bind_address, config.registry.port)


def local_registry_hosting(config: Settings, service_host: str) -> dict[str, Any]:
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
