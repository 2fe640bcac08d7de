"""The kubectl adapter: JSON parsing (never text columns) and explicit contexts."""

from __future__ import annotations

import json

import pytest

from pallet_dev.errors import OperationFailed
from pallet_dev.tools.kubeconfig import UserKubeconfig, entry_from_kubeconfig
from pallet_dev.tools.kubectl import (
    Kubectl,
    parse_nodes,
    parse_pods,
    parse_pvcs,
)
from tests.fakes.runner import FakeToolsRunner


def test_nodes_ready_from_conditions() -> None:
    out = json.dumps(
        {
            "items": [
                {
                    "metadata": {"name": "a"},
                    "status": {
                        "conditions": [
                            {"type": "MemoryPressure", "status": "False"},
                            {"type": "Ready", "status": "True"},
                        ],
                        "nodeInfo": {"kubeletVersion": "v1.34.4"},
                    },
                },
                {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready"}]}},
                {"metadata": {"name": "c"}},
            ]
        }
    )
    nodes = parse_nodes(out)
    assert [(n.name, n.ready) for n in nodes] == [("a", True), ("b", False), ("c", False)]
    assert nodes[0].kubelet_version == "v1.34.4"


def test_pods_phase_readiness_restarts_and_waiting_reason() -> None:
    out = json.dumps(
        {
            "items": [
                {
                    "metadata": {"name": "p"},
                    "spec": {"containers": [{"image": "registry:3.1.2"}]},
                    "status": {
                        "phase": "Pending",
                        "containerStatuses": [
                            {
                                "ready": False,
                                "restartCount": 2,
                                "state": {"waiting": {"reason": "ImagePullBackOff"}},
                            }
                        ],
                    },
                },
                {"metadata": {"name": "q"}, "status": {"phase": "Pending"}},
            ]
        }
    )
    pod, bare = parse_pods(out)
    assert (pod.phase, pod.ready, pod.restarts, pod.waiting_reason) == (
        "Pending",
        False,
        2,
        "ImagePullBackOff",
    )
    assert pod.image == "registry:3.1.2"
    assert not bare.ready and bare.waiting_reason is None


def test_pvcs() -> None:
    out = json.dumps(
        {
            "items": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"volumeName": "pv", "storageClassName": ""},
                    "status": {"phase": "Bound", "capacity": {"storage": "100Mi"}},
                }
            ]
        }
    )
    (pvc,) = parse_pvcs(out)
    assert (pvc.name, pvc.phase, pvc.volume, pvc.capacity) == ("data", "Bound", "pv", "100Mi")


@pytest.mark.parametrize("out", ["NAME STATUS\nx Ready\n", "[]", '{"kind": "List"}'])
def test_non_json_or_odd_json_is_an_error(out: str) -> None:
    with pytest.raises(OperationFailed):
        parse_nodes(out)


def test_every_cluster_command_carries_context_and_kubeconfig() -> None:
    kubectl = Kubectl(FakeToolsRunner(), context="kind-x", kubeconfig="/s/x.kubeconfig")
    head = ["kubectl", "--kubeconfig", "/s/x.kubeconfig", "--context", "kind-x"]
    for argv in (
        kubectl.get_nodes_argv(),
        kubectl.get_pods_argv("pallet", "a=b"),
        kubectl.get_pvcs_argv("pallet", "a=b"),
        kubectl.get_configmap_argv("kube-public", "local-registry-hosting"),
        kubectl.apply_argv(),
        kubectl.rollout_status_argv("pallet", "a=b", 90.5),
    ):
        assert argv[:5] == head
    assert kubectl.rollout_status_argv("pallet", "a=b", 90.5)[-1] == "--timeout=90s"
    assert kubectl.apply_argv()[-2:] == ["-f", "-"]
    assert "--server-side" in kubectl.apply_argv()


def test_context_without_private_kubeconfig_still_names_the_context() -> None:
    assert Kubectl(FakeToolsRunner(), context="kind-x").base() == ["kubectl", "--context", "kind-x"]


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: kind-x
  cluster: {server: "https://127.0.0.1:40001", certificate-authority-data: Q0E=}
- name: other
  cluster: {server: "https://10.0.0.1"}
users:
- name: kind-x
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
contexts:
- name: kind-x
  context: {cluster: kind-x, user: kind-x}
current-context: other
"""


def test_kubeconfig_entry_by_name() -> None:
    entry = entry_from_kubeconfig(KUBECONFIG, "kind-x")
    assert entry is not None
    assert entry.server == "https://127.0.0.1:40001"
    assert (entry.certificate_authority_data, entry.client_key_data) == ("Q0E=", "S0VZ")
    assert entry_from_kubeconfig(KUBECONFIG, "other") is None  # no user/context entries
    assert entry_from_kubeconfig("{not yaml", "kind-x") is None
    assert entry_from_kubeconfig("", "kind-x") is None


def test_user_kubeconfig_edits_never_touch_current_context() -> None:
    user = UserKubeconfig(FakeToolsRunner())
    argvs = [
        user.set_cluster_argv("kind-x", "https://127.0.0.1:1", "/c/ca.crt"),
        user.set_credentials_argv("kind-x", "/c/client.crt", "/c/client.key"),
        user.set_context_argv("kind-x"),
    ]
    for argv in argvs:
        assert argv[:2] == ["kubectl", "config"]
        assert "use-context" not in argv and "--current" not in argv
        assert not any("--kubeconfig" in arg for arg in argv)
    assert "--embed-certs=true" in argvs[0] and "--embed-certs=true" in argvs[1]
