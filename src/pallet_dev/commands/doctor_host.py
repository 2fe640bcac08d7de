"""`pallet-dev doctor`'s checks of the host: the registry port, inotify, disk, preflights."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pallet_dev.commands.doctor_checks import CheckResult, DoctorInputs
from pallet_dev.errors import CommandFailed, CommandTimeout, DaemonUnavailable, PalletError
from pallet_dev.tools.docker import LABEL_ENV, LABEL_MANAGED, Docker
from pallet_dev.tools.docker_types import HostInfo
from pallet_dev.tools.kind import CLUSTER_LABEL, control_plane_node

INOTIFY_MINIMUMS = {"max_user_watches": 524288, "max_user_instances": 512}
GIB = 1024**3


# --- the registry port ------------------------------------------------------------------


def check_port(inputs: DoctorInputs) -> list[CheckResult]:
    from pallet_dev.ports import port_conflict_hint, port_holder, port_is_free

    registry = inputs.config.registry
    where = f"{registry.bind_address}:{registry.port}"
    try:
        free = port_is_free(registry.bind_address, registry.port)
    except OSError as exc:
        return [
            CheckResult.failed(
                "registry-port",
                f"Cannot bind {where}: {exc.strerror or exc}.",
                "Set registry.bind_address to an address of this machine (e.g. 127.0.0.1).",
                found=where,
            )
        ]
    if free:
        return [CheckResult.passed("registry-port", f"{where} free")]
    own = _own_holder(inputs)
    if own is not None:
        return [CheckResult.passed("registry-port", f"{where} used by {own}")]
    holder = port_holder(registry.port, inputs.runner)
    problem = f"Port {registry.port} on {registry.bind_address} is already in use" + (
        f" by {holder}." if holder else "."
    )
    fix = port_conflict_hint(registry.port, holder)
    return [CheckResult.failed("registry-port", problem, fix, found=where)]


def _own_holder(inputs: DoctorInputs) -> str | None:
    """This environment's registry container or kind node, when it publishes the port."""
    config = inputs.config
    if not inputs.runner.has("docker"):
        return None
    docker = Docker(inputs.runner, timeout=inputs.tool_timeout)
    candidates = (
        (config.container_name, {LABEL_MANAGED: "true", LABEL_ENV: config.name}, "registry"),
        # a pallet-dev cluster has one node
        (control_plane_node(config.name), {CLUSTER_LABEL: config.name}, "kind node"),
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


# --- the host: inotify, disk, preflights -------------------------------------------------


def check_inotify(inputs: DoctorInputs) -> list[CheckResult]:
    if not inputs.platform.startswith("linux"):
        found = f"not applicable on {inputs.platform} (kind runs in Docker's VM)"
        return [CheckResult.passed("inotify", found)]
    values: dict[str, int] = {}
    for key in INOTIFY_MINIMUMS:
        try:
            values[key] = int((inputs.inotify_dir / key).read_text().strip())
        except (OSError, ValueError):
            continue
    found = ", ".join(f"{key}={value}" for key, value in values.items()) or "unreadable"
    low = {key: value for key, value in values.items() if value < INOTIFY_MINIMUMS[key]}
    if not low:
        return [CheckResult.passed("inotify", found)]
    settings = " ".join(f"fs.inotify.{key}={INOTIFY_MINIMUMS[key]}" for key in INOTIFY_MINIMUMS)
    problem = (
        "Linux inotify limits are below what kind recommends ("
        + ", ".join(f"{key} {low[key]} < {INOTIFY_MINIMUMS[key]}" for key in low)
        + "); pods may fail with 'too many open files'."
    )
    fix = (
        f"`sudo sysctl {settings}`; to keep it, put the same settings in "
        "/etc/sysctl.d/99-kind.conf."
    )
    return [CheckResult.failed("inotify", problem, fix, found=found, advisory=True)]


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
        return [CheckResult.passed("disk", "; ".join(report) or None)]
    problem = f"Less than {inputs.disk_warn_bytes / GIB:g} GiB free: {'; '.join(low)}."
    fix = (
        "Free space (`docker system prune` removes unused images and containers); "
        "Docker Desktop: raise the disk limit in Settings > Resources."
    )
    return [CheckResult.failed("disk", problem, fix, found="; ".join(report), advisory=True)]


def check_host(inputs: DoctorInputs) -> list[CheckResult]:
    """The preflights `up` runs before creating anything (pallet_dev.preflight)."""
    from pallet_dev import preflight

    registry = inputs.config.registry
    node_image = inputs.config.kind.node_image
    findings = preflight.localhost_findings(registry.bind_address, registry.port)
    host = _host_info(inputs)
    if host is not None:
        findings += preflight.node_image_findings(host, node_image)
        findings += preflight.kind_daemon_findings(host)
    results = [
        CheckResult.failed(
            finding.name, finding.problem, finding.fix, advisory=not finding.blocking
        )
        for finding in findings
    ]
    if host and host.cgroup_version and all(f.name != "cgroup-v1" for f in findings):
        found = f"cgroup v{host.cgroup_version}, node image {node_image.split('@', 1)[0]}"
        results.insert(0, CheckResult.passed("cgroup-v1", found))
    return results


def check_docker_mirror(inputs: DoctorInputs) -> list[CheckResult]:
    """Whether the Docker daemon sends docker.io pulls to the environment's cache
    (docs/mirrors.md); advice only, and only once the cache has run (its port is known)."""
    from pallet_dev import mirrors
    from pallet_dev.backends.docker_mirrors import DockerMirrors

    config = inputs.config
    if not inputs.runner.has("docker"):
        return []
    if not any(mirror.upstream == mirrors.DOCKER_HUB for mirror in config.mirrors):
        return []
    docker = Docker(inputs.runner, timeout=inputs.tool_timeout)
    caches = DockerMirrors(docker, config, inputs.paths)
    port = caches.recorded_ports().get(mirrors.DOCKER_HUB)
    if port is None:
        return []
    try:
        configured = docker.registry_mirrors()
    except PalletError:
        return []
    endpoint = caches.endpoint(port)
    advice = mirrors.daemon_mirror_advice(configured, endpoint)
    if advice is None:
        return [CheckResult.passed("docker-mirror", f"registry-mirrors has {endpoint}")]
    fix = (
        f"Add {mirrors.daemon_json_lines(endpoint)} to daemon.json (/etc/docker/daemon.json; "
        "Docker Desktop: Settings > Docker Engine) and restart Docker."
    )
    problem = "The Docker daemon does not pull docker.io images through the cache."
    found = ", ".join(configured) or "no registry-mirrors"
    return [CheckResult.failed("docker-mirror", problem, fix, found=found, advisory=True)]


def _host_info(inputs: DoctorInputs) -> HostInfo | None:
    """What `docker info` says about the daemon's host; None without a CLI or a daemon."""
    if not inputs.runner.has("docker"):
        return None
    try:
        return Docker(inputs.runner, timeout=inputs.tool_timeout).host_info()
    except (CommandFailed, CommandTimeout, DaemonUnavailable):
        return None


def _docker_root_dir(inputs: DoctorInputs) -> Path | None:
    """Docker's data folder, when the daemon is local (Docker Desktop keeps it in a VM)."""
    try:
        host = _host_info(inputs)
    except PalletError:  # output that is not `docker info`'s JSON: no folder to measure
        return None
    path = Path(host.root_dir) if host and host.root_dir else None
    return path if path is not None and path.is_dir() else None


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)
