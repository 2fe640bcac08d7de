"""The helm adapter: version parsing, flags per major, status JSON, error classification."""

from __future__ import annotations

import pytest

from pallet_dev.errors import CommandFailed, OperationFailed
from pallet_dev.runner import CommandResult
from pallet_dev.tools.helm import (
    Helm,
    HelmRevision,
    classify_helm_error,
    go_duration,
    parse_helm_version,
    upgrade_flags,
)
from tests.fakes.runner import FakeToolsRunner


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch"),
    [
        ("v4.2.4", 4, 2, 4),
        ("v3.22.0+g2a3b4c5", 3, 22, 0),
        ("v4.2", 4, 2, 0),  # what `go install helm.sh/helm/v4/cmd/helm@v4.2.4` prints
        ("3.19.5\n", 3, 19, 5),
    ],
)
def test_versions(text: str, major: int, minor: int, patch: int) -> None:
    version = parse_helm_version(text)
    assert (version.major, version.minor, version.patch) == (major, minor, patch)


def test_unreadable_version_is_an_error() -> None:
    with pytest.raises(OperationFailed, match="Cannot read the Helm version"):
        parse_helm_version("Client: &version.Version{}")


def test_flags_per_major() -> None:
    assert upgrade_flags(parse_helm_version("v4.0.0")) == [
        "--rollback-on-failure",
        "--wait=watcher",
        "--force-conflicts",
    ]
    assert upgrade_flags(parse_helm_version("v3.22.0")) == ["--atomic", "--wait"]
    with pytest.raises(OperationFailed, match="not supported"):
        upgrade_flags(parse_helm_version("v2.17.0"))


def test_go_duration() -> None:
    assert go_duration(299.7) == "299s" and go_duration(0.2) == "1s"


def test_version_is_asked_once() -> None:
    runner = FakeToolsRunner()
    helm = Helm(runner, kube_context="kind-x")
    assert helm.version().major == 4 and helm.version().major == 4
    assert runner.commands() == ["helm version"]
    assert runner.calls[0] == ["helm", "version", "--template", "{{.Version}}"]


def test_every_cluster_command_names_context_and_kubeconfig() -> None:
    helm = Helm(FakeToolsRunner(), kube_context="kind-x", kubeconfig="/s/x.kubeconfig")
    history = helm.history_argv("registry", "pallet")
    assert history == [
        "helm", "history", "registry", "--namespace", "pallet", "--kube-context", "kind-x",
        "--kubeconfig", "/s/x.kubeconfig", "--max", "1", "-o", "json",
    ]  # fmt: skip
    upgrade = helm.upgrade_install_argv(
        "registry",
        "/c",
        "pallet",
        values_files=["/v.json"],
        timeout=120,
        description="d",
        version=parse_helm_version("v3.22.0"),
    )
    assert upgrade[upgrade.index("--kube-context") + 1] == "kind-x"
    assert upgrade[upgrade.index("--timeout") + 1] == "120s"
    assert "--create-namespace" in upgrade and upgrade[-2:] == ["--output", "json"]


def test_render_is_install_dry_run_on_helm_4_and_template_on_helm_3() -> None:
    helm = Helm(FakeToolsRunner(), kube_context="kind-x")
    four = helm.render_argv(
        "r", "/c", "ns", values_files=["/v"], version=parse_helm_version("v4.0")
    )
    three = helm.render_argv(
        "r", "/c", "ns", values_files=["/v"], version=parse_helm_version("v3.1")
    )
    assert four[1:4] == ["install", "r", "/c"] and four[-3:] == [
        "--dry-run=client",
        "--output",
        "json",
    ]
    assert three[1:4] == ["template", "r", "/c"] and "--dry-run=client" not in three


# `helm history registry --max 1 -o json`, as Helm 4.2 and 3.22 both print it
HISTORY = (
    '[{"revision":2,"updated":"2026-11-27T20:47:04.151249316Z","status":"deployed",'
    '"chart":"pallet-registry-0.1.0","app_version":"3.0.0",'
    '"description":"pallet-dev fingerprint 06218f6c63f5dcba"}]'
)


def test_latest_revision_from_history_json() -> None:
    runner = FakeToolsRunner()
    runner.run = lambda argv, **kw: CommandResult(tuple(argv), 0, HISTORY, "", 0.0)  # type: ignore
    latest = Helm(runner, kube_context="kind-x").latest_revision("registry", "pallet")
    assert latest == HelmRevision(
        revision=2,
        status="deployed",
        chart="pallet-registry-0.1.0",
        app_version="3.0.0",
        description="pallet-dev fingerprint 06218f6c63f5dcba",
        updated="2026-11-27T20:47:04.151249316Z",
    )
    assert latest.deployed


def test_missing_release_is_none() -> None:
    runner = FakeToolsRunner()
    runner.state["clusters"]["x"] = {"running": True, "nodes": []}
    runner.state["user_kubeconfig"]["contexts"]["kind-x"] = {}
    assert Helm(runner, kube_context="kind-x").latest_revision("registry", "pallet") is None


def _failed(stderr: str) -> CommandFailed:
    return CommandFailed(["helm", "upgrade"], 1, "", stderr)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
         "locked"),
        ("Error: rendered manifests contain a resource that already exists. ... invalid "
         "ownership metadata", "outside Helm"),
        ("Error: values don't meet the specifications of the schema(s)", "rejected the values"),
        ("Error: context deadline exceeded", "did not become ready in time"),
        ("Error: kubernetes cluster unreachable: dial tcp", "cannot reach the cluster"),
        ("Error: something new", "something new"),
    ],
)  # fmt: skip
def test_errors_are_classified(stderr: str, expected: str) -> None:
    error = classify_helm_error(_failed(stderr), release="registry", namespace="pallet")
    assert expected in error.message and error.hint
