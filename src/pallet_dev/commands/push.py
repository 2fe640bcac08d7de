"""`pallet-dev push IMAGE [--as NAME[:TAG]] [--json]`: a host image into the local registry.

Instead of `kind load docker-image` (which copies the whole image into every node, and
breaks on Docker's containerd image store, kind#3795), the image goes to the registry
both backends publish on ``localhost:<port>``: `docker push` moves only the layers the
registry lacks, and pods pull ``localhost:<port>/NAME@<digest>`` from it. The agents'
build path pushes the same way (agents/images.py).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pallet_dev.context import AppContext
from pallet_dev.errors import (
    CommandFailed,
    DaemonUnavailable,
    OperationFailed,
    PalletError,
    PrerequisiteError,
    UsageError,
)

if TYPE_CHECKING:
    from pallet_dev.probe import ProbeResult
    from pallet_dev.tools.docker import Docker

PUSH_TIMEOUT = 1800.0
_DEFAULT_TAG = "latest"
# the distribution reference grammar: path components and a tag
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def push_target(image: str, as_name: str | None) -> tuple[str, str]:
    """(repository, tag) at the local registry for ``image`` (or ``--as``).

    The source's registry host is dropped (``ghcr.io/acme/api:1`` → ``acme/api:1``), and
    Docker Hub's ``library/`` and ``docker.io/`` prefixes too (``nginx:1.27`` stays
    ``nginx:1.27``).
    """
    if as_name is None and image.startswith("sha256:"):
        raise UsageError(
            f"{image!r:.80} is an image ID, which names no repository.",
            hint="Give `--as NAME[:TAG]` (e.g. `--as team/api:dev`), or push by name.",
        )
    name = as_name if as_name is not None else image
    name = name.split("@", 1)[0]
    repository, tag = name, _DEFAULT_TAG
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
    if as_name is None:
        first, sep, rest = repository.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            repository = rest
        if repository.startswith("library/"):
            repository = repository.removeprefix("library/")
    valid = all(_COMPONENT.match(part) for part in repository.split("/")) and _TAG.match(tag)
    if not repository or not valid:
        raise UsageError(
            (
                f"--as {as_name!r:.60} is not a repository name."
                if as_name is not None
                else f"Cannot name a repository after {image!r:.60}."
            ),
            hint="Use lower-case path components and an optional :tag, e.g. "
            "`--as team/api:dev`.",
        )
    return repository, tag


def run_push(ctx: AppContext, image: str, *, as_name: str | None, as_json: bool) -> int:
    from pallet_dev.config_sources import registry_push_host
    from pallet_dev.output import use_color
    from pallet_dev.probe import manifest_digest
    from pallet_dev.tools.docker import Docker

    config = ctx.load_settings()
    registry = config.registry
    repository, tag = push_target(image, as_name)
    host = registry_push_host(registry.bind_address, registry.port)
    endpoint = f"http://{host}"
    docker = Docker(ctx.runner, timeout=60.0)
    target = f"{host}/{repository}:{tag}"
    # the registry's answer on the side, while Docker tags and pushes: `docker push`
    # itself says whether the registry took it (and the digest it stored), and only a
    # failed push asks what the probe saw; a pushed image never waits for the probe
    answering = _probe_aside(endpoint)
    started, wall_started = time.monotonic(), time.time()
    # the pushed name stays tagged, as after `docker tag` + `docker push` by hand:
    # Docker then records the registry's digest for it (RepoDigests); tagging a name
    # Docker lacks is the missing-image check
    if not docker.tag_if_present(image, target):
        raise UsageError(
            f"The image {image!r:.80} is not in this host's Docker.",
            hint="Build or pull it first; `docker images` lists what is there.",
        )
    try:
        reported = _push(docker, target, draw=not as_json and use_color(sys.stderr))
    except (CommandFailed, DaemonUnavailable) as exc:
        if target != image:  # a name the user gave stays
            _untag_after_failure(docker, target)
        # the daemon answered the tag: a refused connection now is the registry's
        answer = answering()
        if not answer.healthy:
            raise PrerequisiteError(
                f"The registry at {host} does not answer "
                f"({answer.error or answer.status_code}).",
                hint="Start the environment with `pallet-dev up`; `pallet-dev health` "
                "says more.",
            ) from exc
        if not isinstance(exc, CommandFailed):
            raise
        free = _free_bytes(ctx.paths.registry_data_dir(config.name))
        logged = _registry_log(docker, config.container_name, exc, free, wall_started)
        raise _push_error(target, exc, free, logged) from exc
    digest = reported or manifest_digest(endpoint, repository, tag)
    if digest is None:
        raise OperationFailed(
            f"The registry does not list {repository}:{tag} right after the push.",
            hint="See the registry's logs (`pallet-dev status`); retry the push.",
        )
    active = ctx.active(config.name) or {}
    document: dict[str, Any] = {
        "image": image,
        "pushed": target,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "pull": f"{host}/{repository}@{digest}",
        "seconds": round(time.monotonic() - started, 3),
    }
    in_network = active.get("network_pull_host")
    if isinstance(in_network, str):
        document["pull_in_network"] = f"{in_network}/{repository}@{digest}"
    ctx.log.write("push", image=image, target=target, digest=digest)
    if as_json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"Pushed {image} as {target} ({document['seconds']:.1f}s)")
    print(f"  digest: {digest}")
    print(f"  pull:   {document['pull']}   (pods and `docker run` on this host)")
    if "pull_in_network" in document:
        print(f"          {document['pull_in_network']}   (containers on network {config.name})")
    return 0


def _untag_after_failure(docker: Docker, target: str) -> None:
    """A failed push leaves no name it added: ``target`` is untagged when the image has
    another name (never the image's last name: that would delete it). Best effort."""
    try:
        found = docker.inspect_objects([target])
        if found and len(found[0].get("RepoTags") or ()) > 1:
            docker.remove_images([target])
    except PalletError:
        pass


def _push(docker: Docker, target: str, *, draw: bool) -> str | None:
    """`docker push` (a progress bar on a terminal); the digest it reports."""
    if not draw:
        return docker.push(target, timeout=PUSH_TIMEOUT)
    from pallet_dev.richout import LayerProgress, console_for

    with LayerProgress(console_for(sys.stderr), f"pushing {target}") as progress:
        return docker.push(target, timeout=PUSH_TIMEOUT, on_output=progress.feed)


def _probe_aside(endpoint: str) -> Callable[[], ProbeResult]:
    """The registry's probe in a daemon thread; the call returned waits for its answer.
    A daemon thread, so a pushed image never waits for it (it may still be importing
    httpx when the push is done)."""
    import threading

    from pallet_dev.probe import ProbeResult, probe, registry_target

    answer: list[ProbeResult] = []
    done = threading.Event()

    def work() -> None:
        try:
            answer.append(probe(registry_target(endpoint), 2.0))
        finally:
            done.set()

    threading.Thread(target=work, name="pallet-push-probe", daemon=True).start()

    def result() -> ProbeResult:
        done.wait()
        failed = ProbeResult("registry", endpoint, False, None, 0.0, "its probe failed")
        return answer[0] if answer else failed

    return result


# Below this, a folder the registry writes to counts as full: a failed write leaves the
# partial upload filling what there was
FULL_BELOW = 16 * 1024 * 1024


def _free_bytes(folder: Any) -> int | None:
    """Free space where the registry keeps its data when it is a host folder (kind); None
    for a Docker volume or a folder that is not there."""
    import os

    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _registry_log(
    docker: Any, container: str, exc: CommandFailed, free: int | None, since: float
) -> str:
    """The Docker backend's registry log since the push began, when the push got a bare
    500 and no host folder can tell why (its data is in a Docker volume); else ""."""
    if free is not None or "500" not in f"{exc.stderr}{exc.stdout}":
        return ""
    return str(docker.logs_tail(container, 200, since=since - 1.0))


def _push_error(
    target: str, exc: CommandFailed, free: int | None = None, registry_log: str = ""
) -> OperationFailed:
    text = f"{exc.stderr}\n{exc.stdout}".lower()
    # the registry answers a failed write with a bare 500: its host folder (kind) or its
    # own log (the Docker backend's volume) tells why
    full = free is not None and free < FULL_BELOW and "500" in text
    full = full or "no space left on device" in registry_log.lower()
    if full or "no space left" in text or "insufficient storage" in text or "507" in text:
        return OperationFailed(
            f"Pushing {target} failed: the registry ran out of disk space; nothing already "
            "stored was changed.",
            hint="Free disk space where the registry keeps its data (`pallet-dev status` shows "
            "where), then push again.",
        )
    return OperationFailed(
        f"Pushing {target} failed: {exc.message}",
        hint="Check `pallet-dev health`, then push again (layers already sent are kept).",
    )
