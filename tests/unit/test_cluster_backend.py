"""The cluster backend's orchestration against a scripted kubectl/helm (runner seam).

The fake keeps a small world -- namespaces, Secrets, the agents release -- and what the
account may do (RBAC), so the tests assert the exact argv: every call names the context
and (for namespaced objects) the namespace, and nothing cluster-scoped is written except
the namespace `up` creates when allowed.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.cluster import CREATED_ANNOTATION, ClusterBackend
from pallet_dev.backends.table import BACKENDS, CLUSTER, backends_for, select_backend
from pallet_dev.backends.team_registry import TeamRegistry, docker_login
from pallet_dev.config import load_config
from pallet_dev.errors import (
    EXIT_PREREQUISITE,
    EXIT_USAGE,
    CommandFailed,
    ConfigError,
    ContextNotAllowed,
    PermissionMissing,
    PrerequisiteError,
)
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.runner import CommandResult, Runner
from pallet_dev.settings import from_config

CONTEXT = "team-dev"
NS = "pallet-alice"


class FakeCluster(Runner):
    """kubectl and helm against a dict world; ``may`` lists the (verb, resource) allowed."""

    def __init__(self, kubeconfig: dict[str, Any], may: set[tuple[str, str]]) -> None:
        super().__init__()
        self.kubeconfig = kubeconfig
        self.may = may
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.releases: dict[tuple[str, str], int] = {}
        self.calls: list[list[str]] = []

    def has(self, tool: str) -> bool:
        return tool in ("kubectl", "helm", "docker")

    def which(self, tool: str) -> str:
        return f"/fake/{tool}"

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        try:
            out = self._answer(argv, kwargs.get("input"))
        except CommandFailed as exc:
            if kwargs.get("check", True):
                raise
            return CommandResult(tuple(argv), exc.returncode, exc.stdout, exc.stderr, 0.0)
        return CommandResult(tuple(argv), 0, out, "", 0.0)

    def _flag(self, argv: list[str], name: str) -> str | None:
        return argv[argv.index(name) + 1] if name in argv else None

    def _deny(self, argv: list[str], verb: str, resource: str) -> None:
        if (verb, resource) not in self.may:
            raise CommandFailed(
                argv, 1, "", f'Error from server (Forbidden): {resource} is forbidden: "{verb}"'
            )

    def _answer(self, argv: list[str], stdin: str | None) -> str:
        tool = argv[0]
        if tool == "helm":
            assert self._flag(argv, "--kube-context") == CONTEXT, argv
            ns = self._flag(argv, "--namespace")
            assert ns is not None, argv
            verb, release = argv[1], argv[2]
            if verb == "history":
                if (ns, release) not in self.releases:
                    raise CommandFailed(argv, 1, "", "Error: release: not found")
                revision = self.releases[(ns, release)]
                return json.dumps(
                    [{"revision": revision, "status": "deployed", "chart": "pallet-agents-0.1.0"}]
                )
            if verb == "uninstall":
                if self.releases.pop((ns, release), None) is None:
                    raise CommandFailed(
                        argv,
                        1,
                        "",
                        f"Error: uninstall: Release not loaded: {release}: release: not found",
                    )
                return ""
            raise AssertionError(f"unexpected helm call {argv}")
        assert tool == "kubectl" and self._flag(argv, "--context") == CONTEXT, argv
        words = [a for a in argv[3:] if not a.startswith("-")]
        ns = self._flag(argv, "--namespace")
        if words[:2] == ["config", "view"]:
            if not self.kubeconfig:
                stderr = getattr(self, "missing_context", f"context was not found for {CONTEXT}")
                raise CommandFailed(argv, 1, "", f"error: {stderr}")
            return json.dumps(self.kubeconfig)
        verb = words[0]
        if verb == "get":
            kind, name = words[1], words[2]
            if kind == "namespace":
                self._deny(argv, "get", "namespaces")
                found = self.namespaces.get(name)
            else:
                assert ns is not None, argv
                self._deny(argv, "get", kind + "s")
                found = self.secrets.get((ns, name))
            if found is None:
                raise CommandFailed(argv, 1, "", f'Error from server (NotFound): {kind} "{name}"')
            return json.dumps(found)
        if verb in ("create", "apply"):
            manifest = json.loads(stdin or "{}")
            kind = manifest["kind"]
            if kind == "Namespace":
                self._deny(argv, "create", "namespaces")
                self.namespaces[manifest["metadata"]["name"]] = manifest
                return ""
            assert kind == "Secret" and manifest["metadata"]["namespace"] == NS, manifest
            self._deny(argv, "patch", "secrets")
            self.secrets[(NS, manifest["metadata"]["name"])] = manifest
            return ""
        if verb == "delete":
            kind, name = words[1], words[2]
            if kind == "namespace":
                self._deny(argv, "delete", "namespaces")
                self.namespaces.pop(name, None)
            else:
                assert ns is not None, argv
                self.secrets.pop((ns, name), None)
            return ""
        raise AssertionError(f"unexpected kubectl call {argv}")


def kubeconfig(token: str = "t0ken") -> dict[str, Any]:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    return {
        "clusters": [
            {
                "name": "team",
                "cluster": {"server": "https://10.0.0.1:6443/", "certificate-authority-data": ca},
            }
        ],
        "users": [{"name": "alice", "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": "team", "user": "alice"}}],
        "current-context": "prod",
    }


def write_config(tmp_path: Path, **cluster: Any) -> Path:
    settings = {
        "context": CONTEXT,
        "allowed_contexts": [CONTEXT],
        "namespace": "pallet-${USER}",
        "registry": "registry.team.example/pallet",
        **cluster,
    }
    path = tmp_path / "pallet-dev.yaml"
    path.write_text(json.dumps({"name": "pdt-c", "backend": "cluster", "cluster": settings}))
    return path


def backend_for(tmp_path: Path, runner: Runner, **cluster: Any) -> ClusterBackend:
    config, path = load_config(write_config(tmp_path, **cluster), environ={"USER": "Alice"})
    backend = ClusterBackend(
        from_config(config, path),
        runner,
        Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs"),
    )
    backend.await_registry = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return backend


def assert_scoped(calls: list[list[str]]) -> None:
    """Every call names the context; only the namespace itself is written cluster-wide."""
    for argv in calls:
        if argv[0] == "helm":
            assert argv[argv.index("--kube-context") + 1] == CONTEXT
            assert argv[argv.index("--namespace") + 1] == NS
            assert "--create-namespace" not in argv
            continue
        assert argv[:3] == ["kubectl", "--context", CONTEXT], argv
        assert "kube-public" not in argv and "--kubeconfig" not in argv
        writes = {"create", "apply", "delete", "patch", "annotate", "label", "set"}
        if writes & set(argv) and "--namespace" not in argv:
            assert argv[3] in ("create", "delete"), argv
            assert "namespace" in argv or argv[3] == "create", argv


ALL = {
    ("get", "namespaces"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    ("get", "secrets"),
    ("patch", "secrets"),
}
ROLE_ONLY = ALL - {("create", "namespaces"), ("delete", "namespaces")}


def test_up_creates_and_marks_the_namespace_when_allowed(tmp_path: Path) -> None:
    runner = FakeCluster(kubeconfig(), set(ALL))
    backend = backend_for(tmp_path, runner)
    result = backend.up(UpOptions(timeout=30), Steps(quiet=True))
    assert result.actions == ["created-namespace"]
    assert result.endpoint == "https://registry.team.example"
    meta = runner.namespaces[NS]["metadata"]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "pallet-dev"}
    assert meta["annotations"] == {CREATED_ANNOTATION: "pallet-dev"}
    assert_scoped(runner.calls)
    runner.calls.clear()
    again = backend_for(tmp_path, runner).up(UpOptions(timeout=30), Steps(quiet=True))
    assert again.actions == []
    assert [c[3:5] for c in runner.calls] == [["config", "view"], ["get", "namespace"]]


def test_up_without_create_permission_names_the_missing_verb(tmp_path: Path) -> None:
    runner = FakeCluster(kubeconfig(), set(ROLE_ONLY))
    with pytest.raises(PermissionMissing) as caught:
        backend_for(tmp_path, runner).up(UpOptions(timeout=30), Steps(quiet=True))
    assert caught.value.exit_code == EXIT_PREREQUISITE
    assert "lacks `create` on namespaces" in caught.value.message
    assert NS in caught.value.message and CONTEXT in caught.value.message
    assert runner.namespaces == {}


def test_up_uses_an_admin_made_namespace_and_down_clean_keeps_it(tmp_path: Path) -> None:
    runner = FakeCluster(kubeconfig(), set(ROLE_ONLY))
    runner.namespaces[NS] = {"metadata": {"name": NS}, "status": {"phase": "Active"}}
    runner.releases[(NS, "agents")] = 2
    backend = backend_for(tmp_path, runner)
    assert backend.up(UpOptions(timeout=30), Steps(quiet=True)).actions == []
    assert not any("create" in argv for argv in runner.calls)
    down = backend.down(clean=True, steps=Steps(quiet=True))
    assert down.removed == [f"release agents in namespace {NS} (context {CONTEXT})"]
    assert down.kept == [f"namespace {NS} (pallet-dev did not create it)"]
    assert NS in runner.namespaces
    assert_scoped(runner.calls)


def test_down_clean_deletes_only_a_namespace_pallet_dev_created(tmp_path: Path) -> None:
    runner = FakeCluster(kubeconfig(), set(ALL))
    backend = backend_for(tmp_path, runner)
    backend.up(UpOptions(timeout=30), Steps(quiet=True))
    plain = backend.down(clean=False, steps=Steps(quiet=True))
    assert plain.removed == [] and NS in runner.namespaces
    clean = backend.down(clean=True, steps=Steps(quiet=True))
    assert clean.removed == [f"namespace {NS}"]
    assert NS not in runner.namespaces
    deletes = [argv for argv in runner.calls if "delete" in argv]
    assert deletes == [
        [
            "kubectl",
            "--context",
            CONTEXT,
            "delete",
            "namespace",
            NS,
            "--ignore-not-found",
            "--wait=false",
        ]
    ]


def test_pull_secret_from_the_docker_login_is_applied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = base64.b64encode(b"alice:s3cret").decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(
        json.dumps({"auths": {"https://registry.team.example": {"auth": auth}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    runner = FakeCluster(kubeconfig(), set(ALL))
    backend = backend_for(tmp_path, runner, create_pull_secret=True)
    assert backend.up(UpOptions(timeout=30), Steps(quiet=True)).actions == [
        "created-namespace",
        "applied-pull-secret",
    ]
    secret = runner.secrets[(NS, "pallet-dev-pull")]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config == {"auths": {"registry.team.example": {"auth": auth}}}
    assert backend.image_pull_secrets == ("pallet-dev-pull",)
    runner.calls.clear()
    assert backend.up(UpOptions(timeout=30), Steps(quiet=True)).actions == []
    assert not any("apply" in argv for argv in runner.calls)
    assert_scoped(runner.calls)


def test_a_missing_docker_login_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credsStore": "desktop"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    runner = FakeCluster(kubeconfig(), set(ALL))
    with pytest.raises(PrerequisiteError) as caught:
        backend_for(tmp_path, runner, create_pull_secret=True).up(
            UpOptions(timeout=30), Steps(quiet=True)
        )
    assert "credential helper" in caught.value.message
    assert "docker login registry.team.example" in str(caught.value.hint)
    assert runner.secrets == {}


def test_health_credentials_come_from_the_context_as_private_files(tmp_path: Path) -> None:
    runner = FakeCluster(kubeconfig("abc"), set(ALL))
    backend = backend_for(tmp_path, runner)
    api = backend.write_api_access(tmp_path / "api")
    assert api.server == "https://10.0.0.1:6443"
    assert api.token_file and Path(api.token_file).read_text() == "abc"
    assert api.cert_file == "" and Path(api.ca_file).is_file()
    for path in (api.token_file, api.ca_file):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600


def test_agents_go_to_the_users_folder_and_namespace(tmp_path: Path) -> None:
    runner = FakeCluster(kubeconfig(), set(ALL))
    backend = backend_for(tmp_path, runner, pull_secret="team-pull")
    target = backend.agent_image_target()
    assert (target.registry_url, target.registry_host, target.folder) == (
        "https://registry.team.example",
        "registry.team.example",
        "pallet/alice",
    )
    assert backend.agent_registry_address == "registry.team.example"
    from pallet_dev.agents.spec import AgentDeployment

    planned = [
        AgentDeployment(
            "a",
            "registry.team.example/pallet/alice/a@sha256:x",
            "sha256:x",
            8080,
            "/healthz",
            1,
            {},
        )
    ]
    steps = backend.plan_agents(planned, UpOptions(timeout=30))
    upgrade = steps[1].argv
    assert upgrade[upgrade.index("--namespace") + 1] == NS
    assert upgrade[upgrade.index("--kube-context") + 1] == CONTEXT
    assert "--create-namespace" not in upgrade
    assert '"imagePullSecrets": [{"name": "team-pull"}]' in str(steps[1].detail)
    assert backend.agent_logs_argv("a", follow=False, tail=5)[:3] == [
        "kubectl",
        "--context",
        CONTEXT,
    ]
    assert "pdt-c.cluster" in str(backend.agents.values_path)


def test_registry_addresses() -> None:
    assert TeamRegistry.parse("localhost:5001/pallet").url == "http://localhost:5001"
    assert TeamRegistry.parse("127.0.0.1:5001").user_folder("bob") == "bob"
    assert TeamRegistry.parse("http://zot.internal:5000/a/b").url == "http://zot.internal:5000"
    assert TeamRegistry.parse("harbor.example/dev").address == "harbor.example/dev"


def test_docker_login_reads_username_and_password(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"zot:5000": {"username": "u", "password": "p"}}}))
    assert docker_login("zot:5000", path).basic == ("u", "p")
    assert docker_login("other", path).missing is not None


# --- config ----------------------------------------------------------------------------


def test_a_context_outside_allowed_contexts_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pallet-dev.yaml"
    path.write_text(
        "backend: cluster\ncluster:\n  context: prod\n  allowed_contexts: [team-dev]\n"
        "  registry: r.example/p\n"
    )
    with pytest.raises(ContextNotAllowed) as caught:
        load_config(path, environ={"USER": "alice"})
    assert caught.value.exit_code == EXIT_USAGE
    assert f"{path}:3" in caught.value.message
    assert "'prod' is not in cluster.allowed_contexts (allowed: team-dev)" in caught.value.message


@pytest.mark.parametrize(
    ("cluster", "wanted"),
    [
        ({"registry": None}, "cluster.registry: `backend: cluster` pushes the agents"),
        ({"namespace": "ns-${HOME}"}, "cluster.namespace: 'ns-${HOME}' expands"),
        ({"namespace": "${USER}-${NAME}-" + "x" * 60}, "not a valid namespace"),
        ({"context": None}, "cluster.context: `backend: cluster` needs"),
    ],
)
def test_bad_cluster_settings_are_one_sentence(
    tmp_path: Path, cluster: dict[str, Any], wanted: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, **cluster), environ={"USER": "alice"})
    assert wanted in caught.value.message
    assert caught.value.message.count(". ") == 0 or caught.value.message.endswith(".")


def test_namespace_expands_user_and_name(tmp_path: Path) -> None:
    config, _ = load_config(
        write_config(tmp_path, namespace="${NAME}-${USER}"), environ={"USER": "Bob"}
    )
    assert config.cluster.namespace == "pdt-c-bob"
    assert config.cluster.user == "bob"


def test_auto_never_picks_the_cluster_backend(tmp_path: Path) -> None:
    config, _ = load_config(cwd=tmp_path, environ={})
    settings = from_config(config)
    assert CLUSTER.name in BACKENDS and not CLUSTER.auto
    assert CLUSTER not in backends_for(settings)
    runner = FakeCluster(kubeconfig(), set())
    runner.has = lambda tool: tool in ("docker", "helm", "kubectl")  # type: ignore[method-assign]
    chosen = select_backend(
        settings, runner, Paths(tmp_path, tmp_path, tmp_path), dry_run=True
    ).backend
    assert chosen.name != "cluster"


def test_the_documented_role_grants_every_permission_the_backend_uses() -> None:
    import yaml

    from pallet_dev.backends.cluster import NEEDED_PERMISSIONS

    repo = Path(__file__).resolve().parents[2]
    documents = list(yaml.safe_load_all((repo / "docs" / "shared-cluster-rbac.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["Role"]
    granted = {
        (verb, f"{resource}.{group}" if group else resource)
        for rule in documents[0]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for verb, resource, sub in NEEDED_PERMISSIONS:
        name, _, group = resource.partition(".")
        wanted = f"{name}/{sub}" if sub else name
        assert (verb, f"{wanted}.{group}" if group else wanted) in granted, (verb, resource, sub)
    namespaces = yaml.safe_load((repo / "docs" / "shared-cluster-namespaces.yaml").read_text())
    assert namespaces["kind"] == "ClusterRole"
    assert namespaces["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create"]}
    ]


# --- doctor --backend cluster ------------------------------------------------------------


class CanICluster(FakeCluster):
    """`kubectl auth can-i` answered from ``may`` (``resource`` as kubectl names it)."""

    def _answer(self, argv: list[str], stdin: str | None) -> str:
        if "can-i" in argv:
            words = argv[argv.index("can-i") + 1 :]
            verb, resource = words[0], words[1].split("/", 1)[0].split(".", 1)[0]
            sub = next((w.split("=", 1)[1] for w in words if w.startswith("--subresource=")), None)
            if (verb, f"{resource}/{sub}" if sub else resource) in self.may:
                return "yes\n"
            raise CommandFailed(argv, 1, "no\n", "")
        return super()._answer(argv, stdin)


def test_doctor_lists_each_missing_permission(tmp_path: Path) -> None:
    from pallet_dev.backends.cluster import NEEDED_PERMISSIONS
    from pallet_dev.commands.doctor_cluster import _permissions

    everything = {(v, r.split(".")[0] + (f"/{s}" if s else "")) for v, r, s in NEEDED_PERMISSIONS}
    runner = CanICluster(
        kubeconfig(), everything - {("get", "services/proxy"), ("delete", "secrets")}
    )
    runner.namespaces[NS] = {"metadata": {"name": NS}}
    result = _permissions(backend_for(tmp_path, runner), 5.0)
    assert not result.ok
    assert result.problem == (
        f"The account of context '{CONTEXT}' may not, in namespace {NS}: "
        "delete secrets; get services/proxy."
    )
    assert all(argv[:3] == ["kubectl", "--context", CONTEXT] for argv in runner.calls)
    assert all("--namespace" in argv for argv in runner.calls if "can-i" in argv)

    runner.may = everything
    assert _permissions(backend_for(tmp_path, runner), 5.0).ok


def test_doctor_asks_for_namespace_creation_only_when_it_is_missing(tmp_path: Path) -> None:
    from pallet_dev.backends.cluster import NEEDED_PERMISSIONS
    from pallet_dev.commands.doctor_cluster import _permissions

    everything = {(v, r.split(".")[0] + (f"/{s}" if s else "")) for v, r, s in NEEDED_PERMISSIONS}
    runner = CanICluster(kubeconfig(), everything)
    result = _permissions(backend_for(tmp_path, runner), 5.0)
    assert not result.ok and "create namespaces" in str(result.problem)
    assert "(missing: `up` would create it)" in str(result.problem)
    create = [argv for argv in runner.calls if "can-i" in argv and "create" in argv[4:6]]
    assert ["kubectl", "--context", CONTEXT, "auth", "can-i", "create", "namespaces"] in create


def test_doctor_runs_the_cluster_checks_only_for_the_cluster_backend(tmp_path: Path) -> None:
    from pallet_dev.commands.doctor_checks import DoctorInputs
    from pallet_dev.commands.doctor_cluster import check_cluster

    config, _ = load_config(cwd=tmp_path, environ={})
    paths = Paths(tmp_path, tmp_path, tmp_path)
    runner = FakeCluster(kubeconfig(), set())
    assert check_cluster(DoctorInputs(from_config(config), runner, paths)) == []
    broken = check_cluster(DoctorInputs(from_config(config), runner, paths, backend="cluster"))
    assert [(r.name, r.ok) for r in broken] == [("cluster-context", False)]
    assert runner.calls == []


@pytest.mark.parametrize(
    "kubectl_says",
    [f"context was not found for {CONTEXT}", f"cannot locate context {CONTEXT}"],
)
def test_a_context_missing_from_the_kubeconfig_is_a_config_error(
    tmp_path: Path, kubectl_says: str
) -> None:
    runner = FakeCluster({}, set(ALL))
    runner.missing_context = kubectl_says  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as caught:
        backend_for(tmp_path, runner).up(UpOptions(timeout=30), Steps(quiet=True))
    assert caught.value.message == "cluster.context: your kubeconfig has no context 'team-dev'."
    assert [argv[3:5] for argv in runner.calls] == [["config", "view"]]


class FakeClusterWithPlugin(FakeCluster):
    """The fake cluster, but the kubeconfig's `exec` plugin (a real script) really runs."""

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        if str(argv[0]) == sys.executable:
            self.calls.append([str(a) for a in argv])
            return Runner().run(argv, **kwargs)
        return super().run(argv, **kwargs)


def plugin_kubeconfig(tmp_path: Path, *, fails: bool = False) -> dict[str, Any]:
    """A kubeconfig whose user logs in through an `exec` plugin that counts its runs."""
    script = tmp_path / "get-token.py"
    script.write_text(
        "import json, os, pathlib, sys\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['kind'] == 'ExecCredential' and not info['spec']['interactive']\n"
        f"sys.exit(3) if {fails!r} else None\n"
        "count = pathlib.Path(os.environ['COUNT_FILE'])\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',\n"
        "                  'status': {'token': f'tok-{n}'}}))\n"
    )
    config = kubeconfig()
    del config["clusters"][0]["cluster"]["certificate-authority-data"]  # the system's CAs
    config["users"] = [
        {
            "name": "alice",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": sys.executable,
                    "args": [str(script)],
                    "env": [{"name": "COUNT_FILE", "value": str(tmp_path / "count")}],
                }
            },
        }
    ]
    return config


def test_an_exec_plugin_gives_health_a_fresh_token_each_time(tmp_path: Path) -> None:
    """EKS/GKE-style logins: the plugin runs at `up` (a failure stops it early) and again
    for each `health`, whose token may have expired since; no token is kept on disk."""
    from pallet_dev.agents.health import api_client
    from pallet_dev.agents.spec import ApiAccess

    runner = FakeClusterWithPlugin(plugin_kubeconfig(tmp_path), set(ALL))
    api = backend_for(tmp_path, runner).write_api_access(tmp_path / "api")
    assert (tmp_path / "count").read_text() == "1"
    assert api.token_file is None and not (tmp_path / "api" / "token").exists()
    recorded = ApiAccess(**json.loads(json.dumps(api.to_dict())))  # as `health` reads it
    for expected in ("tok-2", "tok-3"):
        client = api_client(recorded, 1.0)
        assert client.headers["Authorization"] == f"Bearer {expected}"
        client.close()


def test_a_failing_exec_plugin_is_one_clear_sentence(tmp_path: Path) -> None:
    from pallet_dev.agents.health import api_client
    from pallet_dev.agents.spec import ApiAccess

    runner = FakeClusterWithPlugin(plugin_kubeconfig(tmp_path, fails=True), set(ALL))
    with pytest.raises(PrerequisiteError) as caught:
        backend_for(tmp_path, runner).write_api_access(tmp_path / "api")
    assert caught.value.message.startswith(
        f"The credential plugin of context '{CONTEXT}' ({sys.executable}) failed:"
    )
    assert "log in first" in str(caught.value.hint)
    api = ApiAccess("https://10.0.0.1:6443", "", "", "", exec_argv=[sys.executable, "-c", "1"])
    with pytest.raises(ValueError, match="gave no token"):
        api_client(api, 1.0)
