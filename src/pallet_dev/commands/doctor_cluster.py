"""`doctor --backend cluster`: the context, the account's permissions, the team registry.

Runs only when the backend checked is `cluster` (the config was then loaded with it, so
the context is already known to be allow-listed). Each check reads; none writes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from typing import TYPE_CHECKING

from pallet_dev.commands.doctor_checks import CheckResult, DoctorInputs
from pallet_dev.errors import CommandFailed, ConfigError, PalletError

if TYPE_CHECKING:
    from pallet_dev.backends.cluster import ClusterBackend


def check_cluster(inputs: DoctorInputs) -> list[CheckResult]:
    if inputs.backend != "cluster":
        return []
    if inputs.config.backend != "cluster":
        return [
            CheckResult.failed(
                "cluster-context",
                "The config does not load for the cluster backend (see the config check).",
                "Fix the cluster: section (docs/shared-cluster.md).",
            )
        ]
    from pallet_dev.backends.cluster import ClusterBackend

    backend = ClusterBackend(inputs.config, inputs.runner, inputs.paths)
    tools = _tools(inputs)
    results = [tools]
    if not inputs.runner.has("kubectl"):
        return [*results, _registry(backend, inputs.tool_timeout)]
    context = _context(backend, inputs.tool_timeout)
    results.append(context)
    if context.ok:
        results.append(_permissions(backend, inputs.tool_timeout))
    results.append(_registry(backend, inputs.tool_timeout))
    return results


def _tools(inputs: DoctorInputs) -> CheckResult:
    """What the cluster backend runs here: docker (build, push), helm and kubectl."""
    from pallet_dev.errors import DaemonUnavailable
    from pallet_dev.runner import INSTALL_HINTS
    from pallet_dev.tools.docker import Docker

    missing = [tool for tool in ("docker", "helm", "kubectl") if not inputs.runner.has(tool)]
    if missing:
        return CheckResult.failed(
            "cluster-tools",
            f"The cluster backend needs {', '.join(missing)} on PATH.",
            " ".join(INSTALL_HINTS[tool] for tool in missing if tool in INSTALL_HINTS) or None,
        )
    try:
        Docker(inputs.runner).ping()
    except DaemonUnavailable as exc:
        return CheckResult.failed(
            "cluster-tools", f"The Docker daemon does not answer ({exc.message})", exc.hint
        )
    return CheckResult.passed("cluster-tools", "docker (daemon answers), helm, kubectl")


def _context(backend: ClusterBackend, timeout: float) -> CheckResult:
    allowed = "allow-listed in cluster.allowed_contexts"
    try:
        server = backend.credentials().server
        version = backend.kubectl().server_version(timeout=timeout)
    except ConfigError as exc:  # not in the kubeconfig: nothing was asked of a server
        return CheckResult.failed("cluster-context", exc.message, exc.hint)
    except PalletError as exc:
        return CheckResult.failed(
            "cluster-context",
            f"Context '{backend.context}' ({allowed}) does not answer: {exc.message}",
            exc.hint or "Check `kubectl --context <context> version` and your network.",
        )
    return CheckResult.passed(
        "cluster-context", f"{backend.context} at {server}, {allowed}", version=version
    )


def _permissions(backend: ClusterBackend, timeout: float) -> CheckResult:
    from pallet_dev.backends.cluster import NEEDED_PERMISSIONS

    kubectl, ns = backend.kubectl(), backend.namespace
    needed = list(NEEDED_PERMISSIONS)
    try:
        exists = kubectl.get_object("namespace", ns, timeout=timeout) is not None
    except CommandFailed:
        exists = False  # not readable: `up` may have to create it
    if not exists:
        needed.append(("create", "namespaces", None))

    def ask(item: tuple[str, str, str | None]) -> tuple[str, bool, str]:
        verb, resource, sub = item
        scope = None if (verb, resource) == ("create", "namespaces") else ns
        target = f"{resource}/{ns}" if resource == "namespaces" and verb == "get" else resource
        allowed, said = kubectl.can_i(verb, target, scope, sub, timeout=timeout)
        shown = f"{verb} {resource}{'/' + sub if sub else ''}"
        return shown, allowed, said

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, needed))
    missing = [
        f"{shown} ({said})" if said != "no" else shown for shown, ok, said in answers if not ok
    ]
    where = f"namespace {ns}" + ("" if exists else " (missing: `up` would create it)")
    if missing:
        return CheckResult.failed(
            "cluster-permissions",
            f"The account of context '{backend.context}' may not, in {where}: "
            f"{'; '.join(missing)}.",
            "Ask a cluster admin to bind the Role of docs/shared-cluster-rbac.yaml in the "
            "namespace (and, to let `up` create it, docs/shared-cluster-namespaces.yaml).",
        )
    return CheckResult.passed(
        "cluster-permissions", f"all {len(needed)} permissions `up` needs in {where}"
    )


def _registry(backend: ClusterBackend, timeout: float) -> CheckResult:
    from pallet_dev.backends.team_registry import docker_login, try_push
    from pallet_dev.probe import probe, registry_target

    registry = backend.registry
    answer = probe(registry_target(registry.url), timeout)
    if not answer.healthy:
        return CheckResult.failed(
            "cluster-registry",
            f"The registry {registry.url}/v2/ does not answer as a registry ({answer.error}).",
            "Check cluster.registry and your network (docs/shared-cluster.md).",
        )
    user = backend.settings.user or "user"
    repository = f"{registry.user_folder(user)}/pallet-dev-doctor"
    login = docker_login(registry.host)
    try:
        refused = try_push(registry, repository, login, timeout)
    except (OSError, ValueError) as exc:
        refused = f"the push check failed ({exc})"
    if refused:
        return CheckResult.failed(
            "cluster-registry",
            f"The registry {registry.host} answers, but {refused}.",
            f"`docker login {registry.host}` with an account that may push to "
            f"{registry.address}/{user}/.",
        )
    return CheckResult.passed(
        "cluster-registry", f"{registry.url} answers and accepts a push to {repository}"
    )
