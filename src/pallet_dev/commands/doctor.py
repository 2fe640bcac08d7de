"""`pallet-dev doctor [--json] [--backend auto|kind|docker]`: every prerequisite at once.

Each check yields one :class:`CheckResult` (name, ok, the backends that need it,
what was found, the problem and its fix); all run in parallel threads, and a check
that breaks becomes a failed result, never a crash.

What each backend needs (docs/health-and-status.md has the full table):

- ``docker``: the docker CLI, a reachable Docker daemon >= 20.10, the registry port.
- ``kind``: the same, plus kind >= v0.20, helm 3.x/4.x and kubectl.
- ``auto``: what the Docker fallback needs, because `up` falls back to Docker when
  kind's tools are missing; kind's prerequisites are reported as warnings, along
  with the backend `up` would pick.

Advisory checks warn and never block: kubectl version skew, kind older than the
pinned release, Linux inotify limits, free disk. Exit 0 when nothing blocks the
chosen backend, 3 (errors.EXIT_PREREQUISITE) otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet_dev import versions
from pallet_dev.config import Config, load_config
from pallet_dev.context import AppContext
from pallet_dev.errors import (
    EXIT_OK,
    EXIT_PREREQUISITE,
    CommandFailed,
    CommandTimeout,
    ConfigError,
    PalletError,
)
from pallet_dev.output import use_color
from pallet_dev.paths import Paths
from pallet_dev.runner import INSTALL_HINTS, CommandResult, Runner
from pallet_dev.settings import Settings

SCHEMA_VERSION = 1
BOTH = ("docker", "kind")
KIND_ONLY = ("kind",)
TOOL_TIMEOUT = 15.0

# kind's known-issues page ("Pod errors due to too many open files"): the Ubuntu
# defaults (8192 / 128) are too low once a cluster runs a few pods.
INOTIFY_DIR = Path("/proc/sys/fs/inotify")
INOTIFY_MINIMUMS = {"max_user_watches": 524288, "max_user_instances": 512}
DISK_WARN_BYTES = 5 * 1024**3
GIB = 1024**3


@dataclass(frozen=True)
class CheckResult:
    name: str  # stable id: docker-cli, docker-daemon, kind, helm, kubectl, ...
    title: str
    ok: bool
    required_for: tuple[str, ...]
    found: str | None = None  # a path, or what the check saw
    version: str | None = None
    problem: str | None = None
    fix: str | None = None
    advisory: bool = False  # a failure warns; it never blocks a backend

    def level(self, backend: str) -> str:
        """ok | warning | error, for the backend being checked."""
        if self.ok:
            return "ok"
        if self.advisory or not needed_by(self.required_for, backend):
            return "warning"
        return "error"

    def to_dict(self, backend: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "ok": self.ok,
            "level": self.level(backend),
            "required_for": list(self.required_for),
            "found": self.found,
            "version": self.version,
            "problem": self.problem,
            "fix": self.fix,
        }


def needed_by(required_for: tuple[str, ...], backend: str) -> bool:
    """Whether ``backend`` needs a prerequisite; auto needs what its Docker fallback needs."""
    return ("docker" if backend == "auto" else backend) in required_for


@dataclass(frozen=True)
class DoctorInputs:
    config: Settings
    runner: Runner
    paths: Paths
    platform: str = sys.platform
    inotify_dir: Path = INOTIFY_DIR
    disk_warn_bytes: int = DISK_WARN_BYTES
    tool_timeout: float = TOOL_TIMEOUT


Check = Callable[[DoctorInputs], list[CheckResult]]


def _run(inputs: DoctorInputs, argv: list[str], step: str) -> CommandResult:
    """Run a tool; a hang or a binary that cannot start becomes a failed result."""
    try:
        return inputs.runner.run(
            argv, timeout=inputs.tool_timeout, check=False, step=f"doctor: {step}"
        )
    except (CommandTimeout, CommandFailed) as exc:
        return CommandResult(tuple(argv), 124, "", exc.message, inputs.tool_timeout)


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _missing(tool: str, title: str, required_for: tuple[str, ...], name: str = "") -> CheckResult:
    return CheckResult(
        name or tool,
        title,
        False,
        required_for,
        problem=f"'{tool}' was not found on PATH.",
        fix=INSTALL_HINTS.get(tool),
    )


# --- Docker -----------------------------------------------------------------------------


def check_docker(inputs: DoctorInputs) -> list[CheckResult]:
    """The CLI and the daemon from one `docker version` (its JSON has both, or Server null)."""
    runner = inputs.runner
    if not runner.has("docker"):
        return [
            _missing("docker", "docker CLI", BOTH, "docker-cli"),
            CheckResult(
                "docker-daemon",
                "Docker daemon",
                False,
                BOTH,
                problem="Not checked: the docker CLI is missing.",
                fix="Install Docker first (see above).",
            ),
        ]
    path = runner.which("docker")
    result = _run(inputs, ["docker", "version", "--format", "{{json .}}"], "docker version")
    try:
        data = json.loads(result.stdout.strip().splitlines()[0]) if result.stdout.strip() else {}
    except (ValueError, IndexError):
        data = {}
    data = data if isinstance(data, dict) else {}
    client = (data.get("Client") or {}).get("Version")
    cli = CheckResult(
        "docker-cli", "docker CLI", True, BOTH, found=path, version=str(client) if client else None
    )
    server = (data.get("Server") or {}).get("Version")
    return [cli, _daemon_result(str(server) if server else None, result)]


def _daemon_result(server: str | None, result: CommandResult) -> CheckResult:
    from pallet_dev.tools.docker import classify_daemon_error

    if server is None:
        known = classify_daemon_error(result.stderr)
        if known is not None:
            return CheckResult(
                "docker-daemon", "Docker daemon", False, BOTH, problem=known.message, fix=known.hint
            )
        return CheckResult(
            "docker-daemon",
            "Docker daemon",
            False,
            BOTH,
            problem="`docker version` reports no server: "
            f"{_tail(result.stderr) or f'exit code {result.returncode}'}.",
            fix="Check that Docker is running and `docker version` works.",
        )
    parsed = versions.parse_version(server)
    if parsed is not None and not versions.at_least(parsed, versions.MIN_DOCKER_SERVER):
        return CheckResult(
            "docker-daemon",
            "Docker daemon",
            False,
            BOTH,
            version=server,
            problem=f"Docker Engine {server} is older than "
            f"{versions.show(versions.MIN_DOCKER_SERVER)[1:]}, the oldest pallet-dev supports.",
            fix="Upgrade Docker: https://docs.docker.com/engine/install/",
        )
    return CheckResult(
        "docker-daemon", "Docker daemon", True, BOTH, found="answers", version=server
    )


# --- kind, helm, kubectl ---------------------------------------------------------------


def check_kind(inputs: DoctorInputs) -> list[CheckResult]:
    runner = inputs.runner
    if not runner.has("kind"):
        return [_missing("kind", "kind", KIND_ONLY)]
    path = runner.which("kind")
    result = _run(inputs, ["kind", "version"], "kind version")
    found = versions.parse_version(result.stdout) if result.ok else None
    pinned = versions.show(versions.PINNED_KIND)
    install = (
        f"Install kind {pinned}: `go install sigs.k8s.io/kind@{pinned}` or "
        "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
    )
    if found is None:
        return [
            CheckResult(
                "kind",
                "kind",
                False,
                KIND_ONLY,
                found=path,
                problem="Cannot read the version from `kind version`: "
                f"{_tail(result.stdout + result.stderr) or 'no output'}.",
                fix=install,
            )
        ]
    shown = versions.show(found)
    if not versions.at_least(found, versions.MIN_KIND):
        return [
            CheckResult(
                "kind",
                "kind",
                False,
                KIND_ONLY,
                found=path,
                version=shown,
                problem=f"kind {shown} is too old: {versions.show(versions.MIN_KIND)} or newer "
                "is needed (per-host registry config through containerd's config_path).",
                fix=install,
            )
        ]
    if not versions.at_least(found, versions.PINNED_KIND):
        return [
            CheckResult(
                "kind",
                "kind",
                False,
                KIND_ONLY,
                found=path,
                version=shown,
                problem=f"kind {shown} is older than {pinned}, which pallet-dev pins; its default "
                "node image is built for that release and may not boot on older kind.",
                fix=install,
                advisory=True,
            )
        ]
    return [
        CheckResult("kind", "kind", True, KIND_ONLY, found=path, version=shown),
        *_node_image_matches_kind(inputs.config.kind.node_image, found),
    ]


def _node_image_matches_kind(image: str, kind: versions.Version) -> list[CheckResult]:
    """A known release's default node image on another kind release: say so (advisory)."""
    built_for = versions.kind_release_of_node_image(image)
    if built_for is None:
        return []
    name = "kind-node-image"
    title = "kind node image"
    short = image.split("@", 1)[0]
    if built_for == kind[:2]:
        return [CheckResult(name, title, True, KIND_ONLY, found=short)]
    expected = versions.KIND_NODE_IMAGES.get(kind[:2])
    return [
        CheckResult(
            name,
            title,
            False,
            KIND_ONLY,
            found=short,
            problem=f"The node image {short} is kind {versions.show(built_for)}'s default, but "
            f"kind {versions.show(kind)} is in use; node images are built per kind release.",
            fix=(
                f"Set kind.node_image to {expected} (kind {versions.show(kind)}'s default), "
                if expected
                else "Set kind.node_image to an image from your kind release's notes, "
            )
            + f"or install kind {versions.show(built_for)}.",
            advisory=True,
        )
    ]


def check_helm(inputs: DoctorInputs) -> list[CheckResult]:
    from pallet_dev.tools.helm import VERSION_TEMPLATE

    runner = inputs.runner
    if not runner.has("helm"):
        return [_missing("helm", "helm", KIND_ONLY)]
    path = runner.which("helm")
    result = _run(inputs, ["helm", "version", "--template", VERSION_TEMPLATE], "helm version")
    found = versions.parse_version(result.stdout) if result.ok else None
    majors = " or ".join(f"{major}.x" for major in versions.HELM_MAJORS)
    if found is None or found[0] not in versions.HELM_MAJORS:
        seen = result.stdout.strip()[:40] or _tail(result.stderr) or "no output"
        return [
            CheckResult(
                "helm",
                "helm",
                False,
                KIND_ONLY,
                found=path,
                version=versions.show(found) if found else None,
                problem=f"Helm {majors} is needed; `helm version` says {seen!r}.",
                fix=INSTALL_HINTS["helm"],
            )
        ]
    return [CheckResult("helm", "helm", True, KIND_ONLY, found=path, version=result.stdout.strip())]


def check_kubectl(inputs: DoctorInputs) -> list[CheckResult]:
    runner = inputs.runner
    if not runner.has("kubectl"):
        return [_missing("kubectl", "kubectl", KIND_ONLY)]
    path = runner.which("kubectl")
    result = _run(inputs, ["kubectl", "version", "--client", "-o", "json"], "kubectl version")
    try:
        data = json.loads(result.stdout) if result.ok else {}
        git_version = str(((data or {}).get("clientVersion") or {}).get("gitVersion") or "")
    except (ValueError, AttributeError):
        git_version = ""
    client = versions.parse_version(git_version) if git_version else None
    cluster = versions.node_image_kubernetes(inputs.config.kind.node_image)
    if client is None or cluster is None:
        # present; without both versions the skew cannot be judged
        return [
            CheckResult(
                "kubectl", "kubectl", True, KIND_ONLY, found=path, version=git_version or None
            )
        ]
    skew = versions.kubectl_skew(client, cluster)
    if skew > versions.KUBECTL_MINOR_SKEW:
        wanted = f"{cluster[0]}.{cluster[1]}"
        return [
            CheckResult(
                "kubectl",
                "kubectl",
                False,
                KIND_ONLY,
                found=path,
                version=git_version,
                problem=f"kubectl {git_version} is {skew} minor versions from the cluster's "
                f"Kubernetes {wanted} (supported skew: ±{versions.KUBECTL_MINOR_SKEW}).",
                fix=f"Install kubectl v{wanted}: https://kubernetes.io/docs/tasks/tools/",
                advisory=True,
            )
        ]
    return [CheckResult("kubectl", "kubectl", True, KIND_ONLY, found=path, version=git_version)]


# --- the registry port ------------------------------------------------------------------


def check_port(inputs: DoctorInputs) -> list[CheckResult]:
    from pallet_dev.ports import port_conflict_hint, port_holder, port_is_free

    registry = inputs.config.registry
    where = f"{registry.bind_address}:{registry.port}"
    try:
        free = port_is_free(registry.bind_address, registry.port)
    except OSError as exc:
        return [
            CheckResult(
                "registry-port",
                "registry port",
                False,
                BOTH,
                found=where,
                problem=f"Cannot bind {where}: {exc.strerror or exc}.",
                fix="Set registry.bind_address to an address of this machine (e.g. 127.0.0.1).",
            )
        ]
    if free:
        return [CheckResult("registry-port", "registry port", True, BOTH, found=f"{where} free")]
    own = _own_holder(inputs)
    if own is not None:
        return [
            CheckResult(
                "registry-port", "registry port", True, BOTH, found=f"{where} used by {own}"
            )
        ]
    holder = port_holder(registry.port, inputs.runner)
    return [
        CheckResult(
            "registry-port",
            "registry port",
            False,
            BOTH,
            found=where,
            problem=f"Port {registry.port} on {registry.bind_address} is already in use"
            + (f" by {holder}." if holder else "."),
            fix=port_conflict_hint(registry.port, holder),
        )
    ]


def _own_holder(inputs: DoctorInputs) -> str | None:
    """This environment's registry container or kind node, when it publishes the port."""
    from pallet_dev.tools.docker import LABEL_ENV, LABEL_MANAGED, Docker

    config = inputs.config
    if not inputs.runner.has("docker"):
        return None
    docker = Docker(inputs.runner, timeout=inputs.tool_timeout)
    candidates = (
        (config.container_name, {LABEL_MANAGED: "true", LABEL_ENV: config.name}, "registry"),
        # kind labels its nodes with the cluster name (a pallet-dev cluster has one node)
        (f"{config.name}-control-plane", {"io.x-k8s.kind.cluster": config.name}, "kind node"),
    )
    for name, labels, what in candidates:
        try:
            info = docker.inspect_container(name)
        except PalletError:
            return None
        if info is None or not info.running:
            continue
        ours = all(info.labels.get(key) == value for key, value in labels.items())
        if ours and any(port.host_port == config.registry.port for port in info.ports):
            return f"this environment's {what} container {name}"
    return None


# --- the host: inotify, disk ------------------------------------------------------------


def check_inotify(inputs: DoctorInputs) -> list[CheckResult]:
    if not inputs.platform.startswith("linux"):
        return [
            CheckResult(
                "inotify",
                "inotify limits",
                True,
                KIND_ONLY,
                found=f"not applicable on {inputs.platform} (kind runs in Docker's VM)",
                advisory=True,
            )
        ]
    values: dict[str, int] = {}
    for key in INOTIFY_MINIMUMS:
        try:
            values[key] = int((inputs.inotify_dir / key).read_text().strip())
        except (OSError, ValueError):
            continue
    found = ", ".join(f"{key}={value}" for key, value in values.items()) or "unreadable"
    low = {key: value for key, value in values.items() if value < INOTIFY_MINIMUMS[key]}
    if not low:
        return [CheckResult("inotify", "inotify limits", True, KIND_ONLY, found=found)]
    settings = " ".join(f"fs.inotify.{key}={INOTIFY_MINIMUMS[key]}" for key in INOTIFY_MINIMUMS)
    return [
        CheckResult(
            "inotify",
            "inotify limits",
            False,
            KIND_ONLY,
            found=found,
            problem="Linux inotify limits are below what kind recommends ("
            + ", ".join(f"{key} {low[key]} < {INOTIFY_MINIMUMS[key]}" for key in low)
            + "); pods may fail with 'too many open files'.",
            fix=f"`sudo sysctl {settings}`; to keep it, put the same settings in "
            "/etc/sysctl.d/99-kind.conf.",
            advisory=True,
        )
    ]


def check_disk(inputs: DoctorInputs) -> list[CheckResult]:
    """Free space where Docker keeps images and volumes (when local) and in the data folder."""
    places: list[tuple[str, Path]] = []
    docker_root = _docker_root_dir(inputs)
    if docker_root is not None:
        places.append(("Docker data", docker_root))
    places.append(("pallet-dev data", _existing_ancestor(inputs.paths.data_dir)))
    seen: set[int] = set()
    report: list[str] = []
    low: list[str] = []
    for label, path in places:
        try:
            device = path.stat().st_dev
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if device in seen:
            continue
        seen.add(device)
        text = f"{free / GIB:.1f} GiB free at {path} ({label})"
        report.append(text)
        if free < inputs.disk_warn_bytes:
            low.append(text)
    if not low:
        return [
            CheckResult(
                "disk", "free disk", True, BOTH, found="; ".join(report) or None, advisory=True
            )
        ]
    return [
        CheckResult(
            "disk",
            "free disk",
            False,
            BOTH,
            found="; ".join(report),
            problem=f"Less than {inputs.disk_warn_bytes / GIB:g} GiB free: {'; '.join(low)}.",
            fix="Free space (`docker system prune` removes unused images and containers); "
            "Docker Desktop: raise the disk limit in Settings > Resources.",
            advisory=True,
        )
    ]


def check_host(inputs: DoctorInputs) -> list[CheckResult]:
    """The preflights `up` runs before creating anything (pallet_dev.preflight)."""
    from pallet_dev import preflight

    registry = inputs.config.registry
    findings = preflight.localhost_findings(registry.bind_address, registry.port)
    cgroup = ""
    if inputs.runner.has("docker"):
        from pallet_dev.tools.docker import HOST_INFO_TEMPLATE, HostInfo

        result = _run(inputs, ["docker", "info", "--format", HOST_INFO_TEMPLATE], "docker info")
        if result.ok:
            host = HostInfo.from_json(result.stdout)
            cgroup = host.cgroup_version
            findings += preflight.node_image_findings(host, inputs.config.kind.node_image)
            findings += preflight.kind_daemon_findings(host)
    results = [
        CheckResult(
            finding.name,
            _HOST_TITLES.get(finding.name, finding.name),
            False,
            BOTH if finding.name == "localhost-ipv6" else KIND_ONLY,
            problem=finding.problem,
            fix=finding.fix,
            advisory=not finding.blocking,
        )
        for finding in findings
    ]
    if cgroup and not any(finding.name == "cgroup-v1" for finding in findings):
        results.insert(
            0,
            CheckResult(
                "cgroup-v1",
                _HOST_TITLES["cgroup-v1"],
                True,
                KIND_ONLY,
                found=f"cgroup v{cgroup}, node image "
                f"{inputs.config.kind.node_image.split('@', 1)[0]}",
            ),
        )
    return results


_HOST_TITLES = {
    "cgroup-v1": "cgroups vs node image",
    "rootless": "rootless daemon",
    "containerd-image-store": "containerd image store",
    "localhost-ipv6": "localhost resolves",
}


def _docker_root_dir(inputs: DoctorInputs) -> Path | None:
    """Docker's data folder, when the daemon is local (Docker Desktop keeps it in a VM)."""
    if not inputs.runner.has("docker"):
        return None
    result = _run(inputs, ["docker", "info", "--format", "{{json .DockerRootDir}}"], "docker info")
    try:
        root = json.loads(result.stdout.strip() or '""') if result.ok else ""
    except ValueError:
        return None
    path = Path(str(root)) if root else None
    return path if path is not None and path.is_dir() else None


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)


CHECKS: tuple[Check, ...] = (
    check_docker,
    check_kind,
    check_helm,
    check_kubectl,
    check_port,
    check_inotify,
    check_disk,
    check_host,
)


def run_checks(inputs: DoctorInputs, checks: tuple[Check, ...] = CHECKS) -> list[CheckResult]:
    """Every check in parallel; results in the order of ``checks``."""
    from concurrent.futures import ThreadPoolExecutor

    def guarded(check: Check) -> list[CheckResult]:
        try:
            return check(inputs)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            name = check.__name__.removeprefix("check_")
            return [
                CheckResult(
                    name,
                    name,
                    False,
                    BOTH,
                    problem=f"The check itself failed: {type(exc).__name__}: {exc}",
                    fix="Re-run with --verbose and report it.",
                )
            ]

    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return [result for results in pool.map(guarded, checks) for result in results]


def config_result(config_file: Path | None) -> tuple[Settings, CheckResult]:
    """Load the config; a broken one is a reported problem and the defaults stand in."""
    from pallet_dev.settings import from_config

    try:
        config, path = load_config(config_file)
    except ConfigError as exc:
        try:  # the environment's settings without the file, so ports and names still fit
            fallback, _ = load_config(Path(os.devnull))
        except ConfigError:
            fallback = Config()
        return from_config(fallback), CheckResult(
            "config",
            "config",
            False,
            BOTH,
            problem=exc.message,
            fix=exc.hint or "Fix it; the other checks ran without the file.",
        )
    found = str(path) if path else "defaults (no pallet-dev.yaml here or above)"
    return from_config(config, path), CheckResult("config", "config", True, BOTH, found=found)


def selected_backend(results: list[CheckResult]) -> str | None:
    """What `up` with backend auto would pick, by these results."""
    if all(r.ok or r.advisory for r in results if needed_by(r.required_for, "kind")):
        return "kind"
    if all(r.ok or r.advisory for r in results if needed_by(r.required_for, "docker")):
        return "docker"
    return None


def doctor_document(
    results: list[CheckResult], *, backend: str, started: float, checked_at: str
) -> dict[str, Any]:
    levels = [result.level(backend) for result in results]
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": backend,
        "ok": "error" not in levels,
        "selected_backend": selected_backend(results) if backend == "auto" else None,
        "platform": sys.platform,
        "checked_at": checked_at,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "errors": levels.count("error"),
        "warnings": levels.count("warning"),
        "checks": [result.to_dict(backend) for result in results],
    }


def render_report(document: dict[str, Any], color: bool) -> str:
    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    marks = {"ok": paint("✓", "32"), "warning": paint("!", "33"), "error": paint("✗", "31")}
    backend = document["backend"]
    lines = [f"Prerequisites for the {backend} backend:"]
    width = max(len(check["title"]) for check in document["checks"])
    for check in document["checks"]:
        seen = " ".join(part for part in (check["version"], check["found"]) if part)
        text = check["problem"] if check["problem"] else seen
        lines.append(f" {marks[check['level']]} {check['title']:<{width}}  {text}".rstrip())
        if check["problem"] and seen:
            lines.append(f"   {'':<{width}}  found: {seen}")
        if check["fix"] and not check["ok"]:
            lines.append(f"   {'':<{width}}  fix: {check['fix']}")
    lines.append("")
    lines.append(_summary(document))
    return "\n".join(lines)


def _summary(document: dict[str, Any]) -> str:
    backend, errors, warnings = document["backend"], document["errors"], document["warnings"]
    also = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    if errors:
        return (
            f"{errors} problem{'s' if errors != 1 else ''} block{'s' if errors == 1 else ''} "
            f"the {backend} backend{also}: fix {'it' if errors == 1 else 'them'} and run "
            "`pallet-dev doctor` again."
        )
    if backend != "auto":
        return f"Ready for the {backend} backend{also}."
    selected = document["selected_backend"]
    if selected == "kind":
        return f"Ready: `pallet-dev up` will use the kind backend{also}."
    return (
        f"Ready: `pallet-dev up` will use the Docker backend; the kind backend lacks what is "
        f"marked above{also}."
    )


def run_doctor(ctx: AppContext, *, as_json: bool, backend: str | None) -> int:
    started = time.perf_counter()
    checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config, config_check = config_result(ctx.config_file)
    chosen = backend or config.backend
    inputs = DoctorInputs(config=config, runner=ctx.runner, paths=ctx.paths)
    results = [config_check, *run_checks(inputs)]
    document = doctor_document(results, backend=chosen, started=started, checked_at=checked_at)
    ctx.log.write(
        "doctor",
        backend=chosen,
        ok=document["ok"],
        errors=[c["name"] for c in document["checks"] if c["level"] == "error"],
        warnings=[c["name"] for c in document["checks"] if c["level"] == "warning"],
        duration_ms=document["duration_ms"],
    )
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        print(render_report(document, use_color(sys.stdout)))
    return EXIT_OK if document["ok"] else EXIT_PREREQUISITE
