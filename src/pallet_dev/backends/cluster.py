"""The cluster backend: the agents in the user's own namespace of a team's existing cluster.

Nothing of the cluster itself is created, deleted or reconfigured: no kind, no registry
chart (the team's registry serves the images), no containerd hosts.toml, no writes to
``kube-public``, no cluster-scoped object except the namespace, which `up` creates only
when it is missing and the account may (and then marks as its own). `up`:

1. reads the context's cluster and credentials from the user's kubeconfig (`kubectl config
   view --minify`, local, read-only; the context was allow-listed when the config loaded);
2. finds the namespace, or creates it (labelled ``app.kubernetes.io/managed-by=pallet-dev``,
   annotated :data:`CREATED_ANNOTATION`); a refusal names the RBAC verb that is missing;
3. with ``create_pull_secret``, applies the pull Secret from the user's Docker login
   for the registry (unchanged: no write), else checks a named ``pull_secret`` exists;
4. waits for the team registry's ``/v2/`` to answer.

The agents then go through the kind backend's path (:class:`~pallet_dev.backends.
kind_agents.KindAgents`): pushed to ``<registry>/<user>/<agent>:<hash>``, the pallet-agents
chart deployed by digest as release ``agents`` (no upgrade when chart and values are
unchanged), health through the API server's service proxy, `dev` with `kubectl set image`.
Every kubectl and helm call carries ``--context``/``--kube-context`` and ``--namespace``;
the kubeconfig is the user's own (``$KUBECONFIG`` or ``~/.kube/config``), never written.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pallet_dev.agents.spec import ApiAccess
from pallet_dev.agents.target import ImageTarget
from pallet_dev.backends.base import (
    Backend,
    BackendStatus,
    DownResult,
    GcResult,
    Plan,
    PlanStep,
    UpOptions,
    UpResult,
)
from pallet_dev.backends.kind_agents import (
    AGENTS_RELEASE,
    KindAgents,
    ReleasedAgents,
    write_secret_files,
)
from pallet_dev.backends.team_registry import TeamRegistry, docker_login
from pallet_dev.errors import (
    CommandFailed,
    CommandTimeout,
    ConfigError,
    OperationFailed,
    PalletError,
    PermissionMissing,
    PrerequisiteError,
    ToolNotFound,
    UsageError,
)
from pallet_dev.output import Steps
from pallet_dev.paths import Paths
from pallet_dev.runner import Runner
from pallet_dev.settings import ClusterSettings, Settings
from pallet_dev.tools.helm import Helm
from pallet_dev.tools.kubeconfig import (
    ContextCredentials,
    ExecPlugin,
    context_credentials,
    exec_credential,
)
from pallet_dev.tools.kubectl import Kubectl, forbidden

MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_VALUE = "pallet-dev"
# on a namespace: pallet-dev created it, so `down --clean` may delete it
CREATED_ANNOTATION = "dev.pallet/created-by"
CAP_QUICK = 30.0
CAP_UNINSTALL = 120.0
# (verb, resource, subresource) in the namespace: what `up`, `down`, `health`, `logs` and
# `dev` ask of the API (docs/shared-cluster-rbac.yaml grants them; `doctor` checks them)
NEEDED_PERMISSIONS: tuple[tuple[str, str, str | None], ...] = (
    ("get", "namespaces", None),
    *(
        (verb, resource, None)
        for resource in ("deployments.apps", "services", "secrets")
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete")
    ),
    *((verb, "replicasets.apps", None) for verb in ("get", "list", "watch")),
    *((verb, resource, None) for resource in ("pods", "events") for verb in ("get", "list")),
    ("get", "pods", "log"),
    ("get", "services", "proxy"),
)


class ClusterBackend(ReleasedAgents, Backend):
    name = "cluster"
    helm_binary = "helm"

    def __init__(self, config: Settings, runner: Runner, paths: Paths) -> None:
        super().__init__(config, runner, paths)
        self._credentials: ContextCredentials | None = None

    # --- names -----------------------------------------------------------------------
    @property
    def settings(self) -> ClusterSettings:
        return self.config.cluster

    @property
    def context(self) -> str:
        if self.settings.context is None:  # config.py checks it for `backend: cluster`
            raise ConfigError("cluster.context is not set.", hint="See docs/shared-cluster.md.")
        return self.settings.context

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def cluster(self) -> str:
        # '.' never occurs in an environment name: no clash with the kind backend's files
        return f"{self.config.name}.cluster"

    @property
    def registry(self) -> TeamRegistry:
        if self.settings.registry is None:
            raise ConfigError("cluster.registry is not set.", hint="See docs/shared-cluster.md.")
        return TeamRegistry.parse(self.settings.registry)

    @property
    def endpoint(self) -> str:
        return self.registry.url

    @property
    def pull_secret(self) -> str | None:
        from pallet_dev.config_cluster import DEFAULT_PULL_SECRET

        if self.settings.pull_secret:
            return self.settings.pull_secret
        return DEFAULT_PULL_SECRET if self.settings.create_pull_secret else None

    def kubectl(self) -> Kubectl:
        return Kubectl(self.runner, context=self.context)

    def helm(self) -> Helm:
        return Helm(
            self.runner, kube_context=self.context, binary=self.helm_binary, create_namespace=False
        )

    def _write_private(self, path: Path, text: str) -> None:
        write_secret_files(path.parent, {path.name: text.encode("utf-8")})

    # --- up --------------------------------------------------------------------------
    def plan_up(self, options: UpOptions) -> Plan:
        kubectl = self.kubectl()
        ns = self.namespace
        steps = [
            PlanStep(
                f"Read context '{self.context}' from your kubeconfig (local, nothing written)",
                kubectl.view_context_argv(),
            ),
            PlanStep(f"Find namespace '{ns}'", kubectl.get_object_argv("namespace", ns)),
            PlanStep(
                f"Create namespace '{ns}' (only when missing; needs `create` on namespaces)",
                kubectl.create_argv(),
                detail=json.dumps(self._namespace_manifest(), sort_keys=True),
            ),
        ]
        if self.settings.create_pull_secret:
            steps.append(
                PlanStep(
                    f"Apply pull Secret '{self.pull_secret}' from your Docker login for "
                    f"{self.registry.host} (only when it differs)",
                    kubectl.apply_argv(),
                )
            )
        elif self.pull_secret:
            steps.append(
                PlanStep(
                    f"Check pull Secret '{self.pull_secret}' exists",
                    kubectl.get_object_argv("secret", self.pull_secret, ns),
                )
            )
        steps.append(
            PlanStep(
                "Wait for the team registry",
                [],
                detail=f"GET {self.endpoint}/v2/ until 200 or 401 (a registry asking for login)",
            )
        )
        return Plan(
            backend=self.name,
            steps=steps,
            notes=[
                f"kubectl and helm always run with --context {self.context} and --namespace "
                f"{ns}; your kubeconfig and current context are never changed.",
                "No registry chart, hosts.toml or cluster-scoped object but the namespace.",
            ],
        )

    def up(self, options: UpOptions, steps: Steps) -> UpResult:
        deadline = time.monotonic() + options.timeout
        actions: list[str] = []
        with steps.step(f"Reading kube context '{self.context}'"):
            self.credentials()
        kubectl = self.kubectl()
        if self._ensure_namespace(kubectl, steps):
            actions.append("created-namespace")
        if self._ensure_pull_secret(kubectl, steps):
            actions.append("applied-pull-secret")
        self.await_registry(
            steps,
            deadline,
            options.timeout,
            hint=f"Check cluster.registry ({self.settings.registry}) and your network; "
            "`pallet-dev doctor --backend cluster` checks it.",
        )
        return UpResult(self.name, self.endpoint, bool(actions), actions)

    def credentials(self) -> ContextCredentials:
        """The context's API server and credentials, from the user's kubeconfig."""
        if self._credentials is None:
            try:
                text = self.kubectl().view_context(timeout=CAP_QUICK)
            except CommandFailed as exc:
                stderr = exc.stderr.lower()
                if "not found" not in stderr and "cannot locate context" not in stderr:
                    raise
                # kubectl: "context was not found for specified context", or (kubectl 1.34)
                # "cannot locate context <name>"
                text = ""
            found = context_credentials(text, self.context)
            if found is None:
                raise ConfigError(
                    f"cluster.context: your kubeconfig has no context '{self.context}'.",
                    hint="See `kubectl config get-contexts`; set KUBECONFIG if the context "
                    "lives in another file.",
                )
            self._credentials = found
        return self._credentials

    def _namespace_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace,
                "labels": {MANAGED_LABEL: MANAGED_VALUE},
                "annotations": {CREATED_ANNOTATION: MANAGED_VALUE},
            },
        }

    def _ensure_namespace(self, kubectl: Kubectl, steps: Steps) -> bool:
        """True when this call created it."""
        ns = self.namespace
        try:
            found = kubectl.get_object("namespace", ns, timeout=CAP_QUICK)
            readable = True
        except CommandFailed as exc:
            if not forbidden(exc):
                raise
            found, readable = None, False
        if found is not None:
            phase = (found.get("status") or {}).get("phase")
            if phase == "Terminating":
                raise OperationFailed(
                    f"Namespace '{ns}' is being deleted.",
                    hint="Wait until it is gone, then run `pallet-dev up` again.",
                )
            steps.done(f"Namespace '{ns}' exists")
            return False
        with steps.step(f"Creating namespace '{ns}'"):
            try:
                kubectl.create(self._namespace_manifest(), timeout=CAP_QUICK)
            except CommandFailed as exc:
                if "alreadyexists" in exc.stderr.lower().replace(" ", ""):
                    return False  # it exists, and this account may not read it
                if not forbidden(exc):
                    raise
                lacking = "`create` on namespaces" + (
                    "" if readable else f" (nor `get` on namespace '{ns}')"
                )
                raise PermissionMissing(
                    f"Namespace '{ns}' does not exist (or cannot be read) and the account of "
                    f"context '{self.context}' may not create it: it lacks {lacking}.",
                    hint="Ask a cluster admin to create it and bind the Role of "
                    "docs/shared-cluster-rbac.yaml there, or to grant the optional "
                    "ClusterRole for creating namespaces.",
                ) from exc
        return True

    def _pull_secret_manifest(self) -> dict[str, Any]:
        registry = self.registry
        login = docker_login(registry.host)
        if login.auth is None:
            raise PrerequisiteError(
                f"cluster.create_pull_secret: {login.missing}.",
                hint=f"Run `docker login {registry.host}`, or create the Secret yourself and "
                "name it in cluster.pull_secret.",
            )
        data = base64.b64encode(login.dockerconfigjson(registry.host).encode()).decode("ascii")
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {
                "name": self.pull_secret,
                "namespace": self.namespace,
                "labels": {MANAGED_LABEL: MANAGED_VALUE},
            },
            "data": {".dockerconfigjson": data},
        }

    def _ensure_pull_secret(self, kubectl: Kubectl, steps: Steps) -> bool:
        name = self.pull_secret
        if name is None:
            return False
        current = kubectl.get_object("secret", name, self.namespace, timeout=CAP_QUICK)
        if not self.settings.create_pull_secret:
            if current is None:
                raise OperationFailed(
                    f"cluster.pull_secret: Secret '{name}' does not exist in namespace "
                    f"'{self.namespace}'.",
                    hint="Create it (`kubectl create secret docker-registry`), or set "
                    "cluster.create_pull_secret: true to make it from your Docker login.",
                )
            steps.done(f"Pull Secret '{name}' exists")
            return False
        wanted = self._pull_secret_manifest()
        labels = ((current or {}).get("metadata") or {}).get("labels") or {}
        if (
            current is not None
            and (current.get("data") or {}) == wanted["data"]
            and labels.get(MANAGED_LABEL) == MANAGED_VALUE
        ):
            steps.done(f"Pull Secret '{name}' unchanged")
            return False
        with steps.step(f"Applying pull Secret '{name}' for {self.registry.host}"):
            kubectl.apply(wanted, timeout=CAP_QUICK)
        return True

    # --- down / status ---------------------------------------------------------------
    def down(self, *, clean: bool, steps: Steps) -> DownResult:
        removed: list[str] = []
        kept: list[str] = []
        where = f"namespace {self.namespace} (context {self.context})"
        with steps.step(f"Uninstalling the agents release from {where}"):
            if self.helm().uninstall(AGENTS_RELEASE, self.namespace, timeout=CAP_UNINSTALL):
                removed.append(f"release {AGENTS_RELEASE} in {where}")
        if clean:
            self._clean(removed, kept)
        elif self.settings.create_pull_secret:
            kept.append(f"pull Secret {self.pull_secret}")
        agents = KindAgents(self)
        agents.values_path.unlink(missing_ok=True)
        shutil.rmtree(agents.api_dir, ignore_errors=True)
        return DownResult(self.name, removed, kept)

    def _clean(self, removed: list[str], kept: list[str]) -> None:
        kubectl = self.kubectl()
        name = self.pull_secret
        if self.settings.create_pull_secret and name:
            secret = kubectl.get_object("secret", name, self.namespace, timeout=CAP_QUICK)
            labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_LABEL) == MANAGED_VALUE:
                kubectl.delete("secret", name, self.namespace, timeout=CAP_QUICK)
                removed.append(f"pull Secret {name}")
        try:
            namespace = kubectl.get_object("namespace", self.namespace, timeout=CAP_QUICK)
        except CommandFailed as exc:
            if not forbidden(exc):
                raise
            namespace = {}
        if namespace is None:
            return
        annotations = (namespace.get("metadata") or {}).get("annotations") or {}
        if annotations.get(CREATED_ANNOTATION) != MANAGED_VALUE:
            kept.append(f"namespace {self.namespace} (pallet-dev did not create it)")
            return
        try:
            kubectl.delete("namespace", self.namespace, timeout=CAP_QUICK)
        except CommandFailed as exc:
            if not forbidden(exc):
                raise
            kept.append(f"namespace {self.namespace} (no permission to delete it)")
            return
        removed.append(f"namespace {self.namespace}")

    def status(self) -> BackendStatus:
        report: dict[str, Any] = {
            "exists": False,
            "context": self.context,
            "namespace": self.namespace,
            "registry": self.registry.address,
            "release": None,
        }
        try:
            latest = self.helm().latest_revision(AGENTS_RELEASE, self.namespace, timeout=CAP_QUICK)
        except PalletError as exc:
            report["error"] = exc.message
            return BackendStatus(False, report)
        if latest is not None:
            report["exists"] = True
            report["release"] = {
                "name": AGENTS_RELEASE,
                "revision": latest.revision,
                "status": latest.status,
                "chart": latest.chart,
                "updated": latest.updated,
            }
        return BackendStatus(bool(report["exists"]), report)

    # --- the team's registry is not pallet-dev's to collect --------------------------
    def registry_data_size(self) -> int | None:
        return None

    def _no_gc(self) -> UsageError:
        return UsageError(
            "`gc` collects pallet-dev's own registry; the cluster backend uses the team's "
            f"registry ({self.registry.address}).",
            hint="Its operators run its garbage collection (Harbor: tag retention and GC; "
            "distribution: `registry garbage-collect`).",
        )

    def plan_collect_garbage(self, *, delete_untagged: bool) -> list[PlanStep]:
        raise self._no_gc()

    def collect_garbage(self, *, delete_untagged: bool, steps: Steps, timeout: float) -> GcResult:
        raise self._no_gc()

    # --- agents: the kind backend's release, in this namespace ------------------------
    @property
    def agents_namespace(self) -> str:
        return self.namespace

    @property
    def image_pull_secrets(self) -> tuple[str, ...]:
        return (self.pull_secret,) if self.pull_secret else ()

    @property
    def agent_registry_address(self) -> str:
        """host[:port], as pods reach the team registry (the agents' images are under
        its folder, ``<folder>/<user>/``)."""
        return self.registry.host

    def agent_image_target(self) -> ImageTarget:
        registry = self.registry
        user = self.settings.user or "user"
        login = docker_login(registry.host).auth  # only sent when the registry asks
        return ImageTarget(registry.url, registry.host, registry.user_folder(user), login)

    def _run_exec_plugin(self, plugin: ExecPlugin) -> tuple[str | None, bytes | None, bytes | None]:
        """The context's `exec` credential plugin, run as kubectl runs it (non-interactive)."""
        try:
            out = self.runner.run(
                plugin.argv(), env=plugin.environment(), timeout=CAP_QUICK, step="exec plugin"
            ).stdout
        except (CommandFailed, CommandTimeout, ToolNotFound) as exc:
            raise PrerequisiteError(
                f"The credential plugin of context '{self.context}' ({plugin.command}) "
                f"failed: {exc.message}",
                hint=f"Check that `kubectl --context {self.context} get --raw /version` works "
                "without a prompt (log in first).",
            ) from exc
        return exec_credential(out)

    def write_api_access(self, api_dir: Path) -> ApiAccess:
        """The context's CA and credentials as 0600 files, for `health` (no subprocess but
        an `exec` credential plugin's, which `health` runs for a fresh token)."""
        creds = self.credentials()
        token, cert, key = creds.token, creds.cert_pem, creds.key_pem
        plugin = creds.exec_plugin if not (token or cert) else None
        if plugin is not None:  # run once now: a plugin that fails says so before any deploy
            token, cert, key = self._run_exec_plugin(plugin)
        if creds.plugin and not (token or cert):
            raise PrerequisiteError(
                f"The user of context '{self.context}' logs in through an {creds.plugin} "
                "plugin that gave no token or client certificate.",
                hint="Use a context with a token, a client certificate or an `exec` plugin "
                "(a ServiceAccount's kubeconfig: docs/shared-cluster.md).",
            )
        files: dict[str, bytes] = {}
        if creds.ca_pem:
            files["ca.crt"] = creds.ca_pem
        if cert and key:
            files["client.crt"], files["client.key"] = cert, key
        if token and plugin is None:  # a plugin's token expires: `health` asks it each time
            files["token"] = token.encode("utf-8")
        written = write_secret_files(api_dir, files)
        return ApiAccess(
            creds.server,
            written.get("ca.crt", ""),
            written.get("client.crt", ""),
            written.get("client.key", ""),
            token_file=written.get("token"),
            insecure=creds.insecure,
            exec_argv=plugin.argv() if plugin and token else (),
            exec_env=plugin.environment() if plugin and token else {},
        )
