"""The docker CLI: argv builders and parsers of its JSON output.

Only ``--format '{{json .}}'`` / ``inspect`` JSON is parsed, never table columns.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pallet_dev.errors import CommandFailed, DaemonUnavailable, OperationFailed, PalletError
from pallet_dev.runner import Runner, last_line, run_lenient
from pallet_dev.tools.docker_types import (
    HOST_INFO_TEMPLATE,
    ContainerInfo,
    ContainerSpec,
    DockerVersion,
    HostInfo,
    classify_daemon_error,
    docker_json,
    json_list,
    names_registry,
    parse_size,
)
from pallet_dev.versions import ToolVersion

LABEL_MANAGED = "dev.pallet.managed"
LABEL_ENV = "dev.pallet.environment"
LABEL_SPEC = "dev.pallet.spec-hash"
LABEL_AGENT = "dev.pallet.agent"

_NOT_FOUND_MARKERS = ("no such container", "no such image", "no such volume", "no such object")


class ContainerExists(Exception):
    """`docker run` found the name taken (internal: the backend inspects and reconciles)."""


class ImageMissing(Exception):
    """`docker run --pull never` found no local image (internal: the backend pulls)."""

    def __init__(self, image: str) -> None:
        super().__init__(image)
        self.image = image


def _builder_key(docker_path: str, environ: Mapping[str, str]) -> str:
    """What `docker buildx version`'s answer depends on, as modification times: the docker
    binary, its config (extra plugin folders) and the folders the CLI loads plugins from."""
    config_dir = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    watched = [docker_path, str(config_dir / "config.json"), str(config_dir / "cli-plugins")]
    watched += [f"/usr/{where}/docker/cli-plugins" for where in _PLUGIN_ROOTS]
    seen = []
    for path in watched:
        try:
            seen.append(f"{path}:{os.stat(path).st_mtime_ns}")
        except OSError:
            seen.append(f"{path}:-")
    return "\n".join(seen)


_PLUGIN_ROOTS = ("local/lib", "local/libexec", "lib", "libexec")


def _not_found(exc: CommandFailed) -> bool:
    text = exc.stderr.lower()
    return any(marker in text for marker in _NOT_FOUND_MARKERS)


class Docker:
    """Adapter over the docker CLI; every call goes through the runner."""

    def __init__(self, runner: Runner, *, timeout: float = 60.0) -> None:
        self.runner = runner
        self.timeout = timeout

    def _run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        step: str = "",
        on_output: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        try:
            return self.runner.run(
                argv, timeout=timeout or self.timeout, step=step, on_output=on_output, env=env
            ).stdout
        except CommandFailed as exc:
            daemon = classify_daemon_error(exc.stderr)
            if daemon is not None:
                raise daemon from None
            raise

    def _engine_json(self, path: str, *, step: str) -> Any:
        """The Engine API's JSON answer to a read (runner.engine_get): None when the socket
        is not used or failed, or did not answer 200 with JSON (the caller runs the CLI)."""
        answer = self.runner.engine_get(path, step=step, timeout=min(self.timeout, 10.0))
        if answer is None or answer[0] != 200:
            return None
        try:
            return json.loads(answer[1])
        except ValueError:
            return None

    def _engine_inspect(self, names: Sequence[str]) -> dict[str, ContainerInfo] | None:
        """What `docker container inspect NAMES` finds, from the Engine API (a missing name
        is a 404 there, as in the CLI, which asks the same endpoint); None: use the CLI."""
        found: dict[str, ContainerInfo] = {}
        for name in names:
            answer = self.runner.engine_get(
                f"/containers/{quote(name, safe='')}/json",
                step="inspect containers",
                timeout=min(self.timeout, 10.0),
            )
            if answer is None or answer[0] not in (200, 404):
                return None
            if answer[0] == 404:
                continue
            try:
                info = ContainerInfo.from_inspect(json.loads(answer[1]))
            except (ValueError, TypeError, AttributeError):
                return None
            found[info.name] = info
        return found

    def ping(self) -> str:
        """The server version; DaemonUnavailable when the daemon cannot be reached."""
        out = self._run(
            ["docker", "version", "--format", "{{json .Server.Version}}"],
            timeout=min(self.timeout, 20.0),
            step="docker version",
        )
        version = docker_json(out, "docker version", '""')
        if not version:
            raise DaemonUnavailable(
                "The Docker daemon is not running.",
                hint="Start Docker Desktop, or `sudo systemctl start docker` on Linux.",
            )
        return str(version)

    def version_argv(self) -> list[str]:
        # one call for both: the CLI prints its own part even when the daemon is down
        return ["docker", "version", "--format", "{{json .}}"]

    def version(self) -> DockerVersion:
        """The CLI's and the daemon's versions; never raises for the daemon's failure.

        Without a daemon `docker version` still prints the JSON (``"Server": null``) and
        exits 1; ``server`` then holds why (DaemonUnavailable when the error is known).
        """
        result = run_lenient(
            self.runner, self.version_argv(), timeout=self.timeout, step="docker version"
        )
        try:
            first = (result.stdout.strip().splitlines() or [""])[0]
            data = docker_json(first, "docker version", "{}")
        except OperationFailed:
            data = {}
        data = data if isinstance(data, dict) else {}
        client = (data.get("Client") or {}).get("Version")
        server = (data.get("Server") or {}).get("Version")
        cli = ToolVersion.of(str(client)) if client else None
        if server:
            return DockerVersion(cli, ToolVersion.of(str(server)))
        no_server = classify_daemon_error(result.stderr) or OperationFailed(
            "`docker version` reports no server: "
            f"{last_line(result.stderr) or f'exit code {result.returncode}'}.",
            hint="Check that Docker is running and `docker version` works.",
        )
        return DockerVersion(cli, no_server)

    def host_info(self) -> HostInfo:
        """The daemon host's cgroup version, rootless mode and image store (`docker info`)."""
        out = self._run(
            ["docker", "info", "--format", HOST_INFO_TEMPLATE],
            timeout=min(self.timeout, 20.0),
            step="docker info",
        )
        return HostInfo.from_json(out)

    def inspect_container(self, name: str) -> ContainerInfo | None:
        found = self._engine_inspect([name])
        if found is not None:
            return next(iter(found.values()), None)
        try:
            out = self._run(["docker", "container", "inspect", name], step="inspect container")
        except CommandFailed as exc:
            if _not_found(exc):
                return None
            raise
        items = json_list(out, "docker container inspect")
        return ContainerInfo.from_inspect(items[0]) if items else None

    @staticmethod
    def inspect_argv(names: Sequence[str]) -> list[str]:
        return ["docker", "inspect", *names]

    def inspect_objects(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """Objects of any kind by name, in one call (a container name before an image's):
        those that exist; a missing one is only absent from the list."""
        result = self.runner.run(
            self.inspect_argv(names), timeout=self.timeout, check=False, step="docker inspect"
        )
        if result.returncode != 0:
            failed = CommandFailed(result.argv, result.returncode, result.stdout, result.stderr)
            daemon = classify_daemon_error(result.stderr)
            if daemon is not None:
                raise daemon
            if not _not_found(failed):
                raise failed
        return [item for item in json_list(result.stdout or "[]", "docker inspect") if item]

    def image_id(self, image: str) -> str | None:
        try:
            out = self._run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", image], step="inspect image"
            )
        except CommandFailed as exc:
            if _not_found(exc):
                return None
            raise
        return out.strip() or None

    def image_tags(self, repository: str) -> list[str]:
        """This host's tags of ``repository`` (``localhost:5000/env/agent``), the newest
        image's first."""
        listed = self._engine_json(
            "/images/json?filters=" + quote(json.dumps({"reference": [repository]}), safe=""),
            step="list images",
        )
        if isinstance(listed, list):
            newest = sorted(listed, key=lambda item: -int(item.get("Created") or 0))
            tags = [str(tag) for item in newest for tag in item.get("RepoTags") or ()]
        else:  # the CLI lists the newest first too
            out = self._run(
                ["docker", "image", "ls", "--format", "{{json .}}", repository],
                step="list images",
            )
            rows = [json.loads(line) for line in out.splitlines() if line.strip()]
            tags = [f"{row.get('Repository')}:{row.get('Tag')}" for row in rows]
        return [tag for tag in tags if tag.rpartition(":")[0] == repository]

    def remove_images(self, refs: Sequence[str]) -> list[str]:
        """Untag ``refs`` (an image goes with its last tag and no container using it; an
        image a container uses keeps its data): those that were untagged."""
        if not refs:
            return []
        result = self.runner.run(
            ["docker", "image", "rm", *refs],
            timeout=self.timeout,
            check=False,
            step="remove images",
        )
        if result.returncode != 0:
            daemon = classify_daemon_error(result.stderr)
            if daemon is not None:
                raise daemon
        untagged = {line.partition(":")[2].strip() for line in result.stdout.splitlines()}
        return [ref for ref in refs if ref in untagged]

    def pull(self, image: str, *, timeout: float) -> None:
        """Pull with the CLI's own progress on stderr."""
        try:
            self.runner.run(
                ["docker", "pull", image], timeout=timeout, stream=True, step="pull image"
            )
        except CommandFailed as exc:
            raise OperationFailed(
                f"Cannot pull {image} and it is not present locally.",
                hint="Check your network or proxy (`docker pull` must work), or load the image "
                "with `docker load`, or set registry.image to an image you have.",
            ) from exc

    def volume_exists(self, name: str) -> bool:
        try:
            self._run(["docker", "volume", "inspect", name], step="inspect volume")
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def volume_remove(self, name: str) -> bool:
        try:
            self._run(["docker", "volume", "rm", name], step="remove volume")
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def run(self, spec: ContainerSpec, *, env: Mapping[str, str] | None = None) -> str:
        """`docker run`; ImageMissing when the image is not present locally,
        ContainerExists when the name is taken (nothing was created then). ``env`` is
        the CLI's own environment (values a bare ``--env NAME`` passes on, never argv)."""
        try:
            return self._run(spec.run_argv(), step="run container", env=env).strip()
        except CommandFailed as exc:
            text = exc.stderr.lower()
            if "no such image" in text:
                raise ImageMissing(spec.image) from None
            if "is already in use by container" in text or "conflict. the container name" in text:
                raise ContainerExists(spec.name) from None
            raise

    def run_pulling(self, spec: ContainerSpec, *, pull_timeout: float, on_pull: Any = None) -> None:
        """`docker run`, pulling the image once when it is not present locally
        (``on_pull(image)`` says so first). ContainerExists as for :meth:`run`."""
        try:
            self.run(spec)
            return
        except ImageMissing:
            if on_pull is not None:
                on_pull(spec.image)
            self.pull(spec.image, timeout=pull_timeout)
        try:
            self.run(spec)
        except ImageMissing:
            raise OperationFailed(f"Image {spec.image} is still missing after a pull.") from None

    def start(self, name: str) -> None:
        self._run(["docker", "container", "start", name], step="start container")

    def stop(self, name: str, *, grace: int = 10) -> None:
        """Stop a container (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        argv = ["docker", "container", "stop", "--time", str(grace), name]
        self._run(argv, timeout=grace + 30.0, step="stop container")

    @staticmethod
    def garbage_collect_argv(
        image: str, mount: str, *, name: str, env: Mapping[str, str], delete_untagged: bool
    ) -> list[str]:
        """A one-off container of the registry image that runs `registry garbage-collect`
        on the registry's data (``mount``, a `--mount` value) and is removed afterwards.

        The image's own config (``/etc/distribution/config.yml``) keeps the data in
        ``/var/lib/registry``; without a network nothing can reach it while it runs.
        """
        argv = ["docker", "run", "--rm", "--pull", "never", "--name", name]
        argv += ["--network", "none", "--mount", mount]
        for key, value in sorted(env.items()):
            argv += ["--env", f"{key}={value}"]
        argv += [image, "garbage-collect", "/etc/distribution/config.yml"]
        return argv + (["--delete-untagged"] if delete_untagged else [])

    def run_once(self, argv: list[str], *, timeout: float, step: str) -> str:
        """Run a one-off container to its end; its output (stdout, then stderr)."""
        try:
            result = self.runner.run(argv, timeout=timeout, step=step)
        except CommandFailed as exc:
            daemon = classify_daemon_error(exc.stderr)
            if daemon is not None:
                raise daemon from None
            raise
        return result.stdout + result.stderr

    @staticmethod
    def copy_argv(source: str, target: str) -> list[str]:
        """`docker cp` between a container (``name:/path``, running or stopped: its volumes
        too) and a host path; modification times are kept."""
        return ["docker", "container", "cp", source, target]

    def copy(self, source: str, target: str, *, timeout: float) -> bool:
        """Copy; False when the source path does not exist."""
        try:
            self._run(self.copy_argv(source, target), timeout=timeout, step="docker cp")
        except CommandFailed as exc:
            if "could not find the file" in exc.stderr.lower():
                return False
            raise
        return True

    def remove(self, name: str) -> bool:
        """Remove a container and its anonymous volumes (an image's VOLUME it was not given
        one for: left behind, one more per replacement); a named volume stays."""
        try:
            self._run(
                ["docker", "container", "rm", "--force", "--volumes", name], step="remove container"
            )
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    # --- images: build, tag, push ---------------------------------------------------
    @staticmethod
    def build_argv(
        tag: str,
        context: str,
        dockerfile: str,
        *,
        target: str | None = None,
        args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        legacy: bool = False,
    ) -> list[str]:
        argv = ["docker", "build", "--tag", tag, "--file", dockerfile]
        if legacy:
            # the legacy builder keeps a failed step's container unless told not to
            argv.append("--force-rm")
        if target:
            argv += ["--target", target]
        for key, value in sorted((args or {}).items()):
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in sorted((labels or {}).items()):
            argv += ["--label", f"{key}={value}"]
        argv.append(context)
        return argv

    def has_buildx(self) -> bool:
        """Whether `docker build` runs BuildKit (the buildx plugin) or the legacy builder."""
        try:
            self.runner.run(
                ["docker", "buildx", "version"], timeout=min(self.timeout, 20.0), step="buildx"
            )
        except CommandFailed:
            return False
        return True

    def legacy_builder(self, memo: Path | None = None) -> bool:
        """Whether `docker build` runs the legacy builder: DOCKER_BUILDKIT=0, or no buildx
        plugin. :meth:`has_buildx`'s answer is kept in ``memo`` under what it depends on
        (the docker binary and the CLI plugin folders, by modification time), so later
        runs ask only after one of those changed. A stale answer still builds: the
        legacy builder takes BuildKit's flags, and BuildKit the legacy ones."""
        environ = {**os.environ, **self.runner.extra_env}
        if environ.get("DOCKER_BUILDKIT", "").strip().lower() in ("0", "false"):
            return True
        if memo is None:
            return not self.has_buildx()
        key = _builder_key(self.runner.which("docker"), environ)
        try:
            kept = json.loads(memo.read_text())
            if kept.get("key") == key and isinstance(kept.get("legacy"), bool):
                return bool(kept["legacy"])
        except (OSError, ValueError, AttributeError):
            pass  # not there or unreadable: ask
        legacy = not self.has_buildx()
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(json.dumps({"key": key, "legacy": legacy}))
        except OSError:
            pass  # asked again next time
        return legacy

    def build(
        self,
        argv: list[str],
        *,
        timeout: float,
        on_output: Any = None,
        env: Any = None,
        on_start: Callable[[], None] | None = None,
    ) -> str:
        """Run a build from :meth:`build_argv`; its whole output (stdout and stderr)."""
        return self.runner.run(
            argv,
            timeout=timeout,
            step="docker build",
            on_output=on_output,
            env=env,
            on_start=on_start,
        ).stdout

    def tag(self, source: str, target: str) -> None:
        self._run(["docker", "image", "tag", source, target], step="tag image")

    def tag_if_present(self, source: str, target: str) -> bool:
        """Tag ``source`` as ``target``; False when Docker has no image ``source``."""
        try:
            self.tag(source, target)
        except CommandFailed as exc:
            if _not_found(exc):
                return False
            raise
        return True

    @staticmethod
    def push_argv(image: str) -> list[str]:
        # not --quiet: its last line, "<tag>: digest: sha256:... size: N", is the digest
        # the registry stored, so no manifest request has to ask for it afterwards
        return ["docker", "push", image]

    def push(self, image: str, *, timeout: float, on_output: Any = None) -> str | None:
        """Push ``image``; the manifest digest Docker reports (None when it printed none).
        ``on_output`` gets docker's per-layer status lines (a progress bar)."""
        try:
            result = self.runner.run(
                self.push_argv(image), timeout=timeout, step="push image", on_output=on_output
            )
        except CommandFailed as exc:
            # "connection refused" naming the registry is the registry gone (a push cut
            # by its restart), not the daemon: the push's own failure then
            daemon = classify_daemon_error(exc.stderr)
            if daemon is not None and not names_registry(f"{exc.stderr}{exc.stdout}", image):
                raise daemon from None
            raise
        return pushed_digest(result.stdout)

    # --- containers by label, several at once ------------------------------------------
    def containers_with_labels(self, labels: Mapping[str, str], *, key: str = "") -> list[str]:
        """Names of all containers (running or not) with these labels (and label ``key``)."""
        wanted = [f"{name}={value}" for name, value in sorted(labels.items())]
        wanted += [key] if key else []
        listed = self._engine_json(
            "/containers/json?all=1&filters=" + quote(json.dumps({"label": wanted}), safe=""),
            step="list containers",
        )
        if isinstance(listed, list):
            # `--format {{json .Names}}` prints each name without its leading "/"; a name
            # with a further "/" is a legacy link's alias, not a container of its own
            own = (str(n)[1:] for item in listed for n in item.get("Names") or ())
            return sorted(n for n in own if n and "/" not in n)
        argv = ["docker", "container", "ls", "--all", "--no-trunc", "--format", "{{json .Names}}"]
        for label in wanted:
            argv += ["--filter", f"label={label}"]
        out = self._run(argv, step="list containers")
        names: list[str] = []
        for line in out.splitlines():
            if line.strip():
                names += str(json.loads(line)).split(",")
        return sorted(names)

    def inspect_containers(self, names: Sequence[str]) -> dict[str, ContainerInfo]:
        """Every named container that exists, in one call (missing names are left out)."""
        if not names:
            return {}
        answered = self._engine_inspect(names)
        if answered is not None:
            return answered
        try:
            out = self._run(["docker", "container", "inspect", *names], step="inspect containers")
        except CommandFailed as exc:
            if not _not_found(exc):
                raise
            out = exc.stdout or "[]"
        found = [ContainerInfo.from_inspect(item) for item in json_list(out or "[]", "inspect")]
        return {info.name: info for info in found}

    @staticmethod
    def logs_argv(
        name: str, *, follow: bool = False, tail: int | None = None, since: float | None = None
    ) -> list[str]:
        argv = ["docker", "container", "logs"]
        if follow:
            argv.append("--follow")
        if tail is not None:
            argv += ["--tail", str(tail)]
        if since is not None:  # a Unix time: the lines written from then on
            argv += ["--since", f"{since:.3f}"]
        return [*argv, name]

    def logs_tail(self, name: str, lines: int = 20, *, since: float | None = None) -> str:
        """The container's last ``lines`` log lines ("" when it cannot say)."""
        try:
            result = self.runner.run(
                self.logs_argv(name, tail=lines, since=since),
                timeout=20,
                check=False,
                step="container logs",
            )
        except PalletError:
            return ""
        return (result.stdout + result.stderr).strip()

    # --- networks ----------------------------------------------------------------------
    @staticmethod
    def network_create_argv(name: str, labels: Mapping[str, str]) -> list[str]:
        argv = ["docker", "network", "create"]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        return [*argv, name]

    def network_labels(self, name: str) -> Mapping[str, str] | None:
        """The network's labels, or None when it does not exist."""
        try:
            out = self._run(
                ["docker", "network", "inspect", "--format", "{{json .Labels}}", name],
                step="inspect network",
            )
        except CommandFailed as exc:
            if "not found" in exc.stderr.lower() or _not_found(exc):
                return None
            raise
        data = json.loads(out.strip() or "{}") or {}
        return {str(k): str(v) for k, v in data.items()}

    def network_create(self, name: str, labels: Mapping[str, str]) -> None:
        try:
            self._run(self.network_create_argv(name, labels), step="create network")
        except CommandFailed as exc:
            if "already exists" not in exc.stderr.lower():
                raise

    def network_connect(self, network: str, container: str) -> None:
        try:
            self._run(["docker", "network", "connect", network, container], step="connect")
        except CommandFailed as exc:
            if "already exists" not in exc.stderr.lower():
                raise

    def network_remove(self, name: str) -> bool:
        try:
            self._run(["docker", "network", "rm", name], step="remove network")
        except CommandFailed as exc:
            text = exc.stderr.lower()
            if "not found" in text or _not_found(exc):
                return False
            raise
        return True

    def registry_mirrors(self) -> list[str]:
        """The daemon's ``registry-mirrors`` (daemon.json), from `docker info`."""
        out = self._run(
            ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"],
            timeout=min(self.timeout, 20.0),
            step="docker info",
        )
        data = docker_json(out, "docker info", "[]")
        return [str(item) for item in data] if isinstance(data, list) else []

    def volumes_with_labels(self, labels: Mapping[str, str], *, prefix: str = "") -> list[str]:
        """Names of volumes with these labels (and a name starting with ``prefix``)."""
        argv = ["docker", "volume", "ls", "--format", "{{json .Name}}"]
        for name, value in sorted(labels.items()):
            argv += ["--filter", f"label={name}={value}"]
        out = self._run(argv, step="list volumes")
        names = [str(json.loads(line)) for line in out.splitlines() if line.strip()]
        return sorted(name for name in names if name.startswith(prefix))

    def volume_sizes(self) -> dict[str, int]:
        """Every volume's size from `docker system df -v` (those Docker could measure)."""
        out = self._run(
            ["docker", "system", "df", "--verbose", "--format", "{{json .Volumes}}"],
            timeout=60,
            step="disk usage",
        )
        try:
            volumes = json.loads(out.strip() or "[]")
        except json.JSONDecodeError:
            return {}
        sizes: dict[str, int] = {}
        for volume in volumes or []:
            size = parse_size(str(volume.get("Size", "")))
            if size is not None:
                sizes[str(volume.get("Name"))] = size
        return sizes

    def volume_size_bytes(self, name: str) -> int | None:
        """Size of a volume from `docker system df -v` (None when unknown)."""
        return self.volume_sizes().get(name)


_PUSHED = re.compile(r"(?m)^\S+: digest: (sha256:[0-9a-f]{64}) size: \d+\s*$")


def pushed_digest(output: str) -> str | None:
    """The digest in `docker push`'s last "<tag>: digest: sha256:... size: N" line."""
    found = _PUSHED.findall(output)
    return str(found[-1]) if found else None
