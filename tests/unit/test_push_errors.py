"""How a failed `docker push` is worded: a full registry disk is named as such."""

from __future__ import annotations

import pytest

from pallet_dev.commands.push import FULL_BELOW, _push_error
from pallet_dev.errors import CommandFailed

BARE_500 = "received unexpected HTTP status: 500 Internal Server Error"


@pytest.mark.parametrize(
    "stderr, free, full",
    [
        (BARE_500, 0, True),  # the registry's host folder is full: the 500 was the disk
        (BARE_500, FULL_BELOW - 1, True),
        (BARE_500, 10 * FULL_BELOW, False),  # room left: some other failure
        (BARE_500, None, False),  # a Docker volume: nothing to look at
        ("write /var/lib/registry/x: no space left on device", None, True),
        ("connection reset by peer", 0, False),
    ],
)
def test_a_push_failure_names_a_full_disk_only_when_it_is_one(
    stderr: str, free: int | None, full: bool
) -> None:
    exc = CommandFailed(["docker", "push", "t"], 1, "", stderr)
    error = _push_error("localhost:5000/t:1", exc, free)
    assert ("ran out of disk space" in error.message) is full, error.message


class RefusingRunner:
    """A runner whose `docker push` fails with ``stderr``."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr

    def run(self, argv: list[str], **_: object) -> None:
        raise CommandFailed(list(argv), 1, "", self.stderr)


FULL_LOG = (
    'time="2026-12-06T18:30:00Z" level=error msg="response completed with error" '
    'err.message="unknown error" err.detail="filesystem: write /var/lib/registry/docker/'
    'registry/v2/repositories/t/_uploads/x/data: no space left on device"'
)


@pytest.mark.parametrize(
    "stderr, log, full",
    [
        (BARE_500, FULL_LOG, True),  # the Docker backend's registry says why it answered 500
        (BARE_500, 'level=info msg="response completed"', False),
        (BARE_500, "", False),
    ],
)
def test_the_docker_backends_registry_log_names_a_full_volume(
    stderr: str, log: str, full: bool
) -> None:
    exc = CommandFailed(["docker", "push", "t"], 1, "", stderr)
    error = _push_error("localhost:5000/t:1", exc, None, log)
    assert ("ran out of disk space" in error.message) is full, error.message


class LoggingDocker:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int, float | None]] = []

    def logs_tail(self, name: str, lines: int = 20, *, since: float | None = None) -> str:
        self.asked.append((name, lines, since))
        return FULL_LOG


def test_the_registry_log_is_read_only_for_a_bare_500_without_a_host_folder() -> None:
    from pallet_dev.commands.push import _registry_log

    docker = LoggingDocker()
    bare = CommandFailed(["docker", "push", "t"], 1, "", BARE_500)
    other = CommandFailed(["docker", "push", "t"], 1, "", "connection reset by peer")
    assert _registry_log(docker, "pallet-dev-registry", bare, 0, 100.0) == ""  # kind: folder
    assert _registry_log(docker, "pallet-dev-registry", other, None, 100.0) == ""
    assert docker.asked == []
    assert _registry_log(docker, "pallet-dev-registry", bare, None, 100.0) == FULL_LOG
    assert docker.asked == [("pallet-dev-registry", 200, 99.0)]


def test_logs_argv_since() -> None:
    from pallet_dev.tools.docker import Docker

    argv = Docker.logs_argv("reg", tail=5, since=1700000000.25)
    assert argv == [
        "docker",
        "container",
        "logs",
        "--tail",
        "5",
        "--since",
        "1700000000.250",
        "reg",
    ]


def test_a_registry_gone_mid_push_is_the_push_failing_not_the_daemon() -> None:
    from pallet_dev.errors import DaemonUnavailable
    from pallet_dev.tools.docker import Docker

    image = "localhost:5000/t:1"
    refused = "dial tcp 127.0.0.1:5000: connect: connection refused"  # the registry went away
    with pytest.raises(CommandFailed):
        Docker(RefusingRunner(f"Put http://127.0.0.1:5000/v2/t/blobs: {refused}")).push(
            image, timeout=5
        )
    gone = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    with pytest.raises(DaemonUnavailable):
        Docker(RefusingRunner(gone)).push(image, timeout=5)


@pytest.mark.parametrize(
    ("output", "image", "named"),
    [
        ("dial tcp 127.0.0.1:5000: connect: connection refused", "localhost:5000/t:1", True),
        ("dial tcp [::1]:5000: connect: connection refused", "localhost:5000/t:1", True),
        ("dial tcp 127.0.0.1:50001: connect: connection refused", "localhost:5000/t:1", False),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
            "localhost:5000/t",
            False,
        ),
        ("lookup registry.example: connection refused", "registry.example/t:1", True),
    ],
)
def test_names_registry_knows_the_registry_by_its_port(
    output: str, image: str, named: bool
) -> None:
    from pallet_dev.tools.docker_types import names_registry

    assert names_registry(output, image) is named


PUSH_OUTPUT = """The push refers to repository [localhost:5077/raw/q]
fa54bf813b9c: Preparing
77c2385cc5be: Preparing
77c2385cc5be: Layer already exists
fa54bf813b9c: Pushed
2: digest: sha256:57ce26603cabae225ea2a7e6a36a41eac761f27c8d96cdf81d9566822aaf41cf size: 735
"""


@pytest.mark.parametrize(
    ("output", "digest"),
    [
        (PUSH_OUTPUT, "sha256:57ce26603cabae225ea2a7e6a36a41eac761f27c8d96cdf81d9566822aaf41cf"),
        # a tag that looks like a digest line's start, then the real one
        (
            "v1: digest: sha256:" + "a" * 64 + " size: 1\nv1: digest: sha256:" + "b" * 64
            + " size: 2\n",
            "sha256:" + "b" * 64,
        ),  # fmt: skip
        ("localhost:5077/raw/q:1\n", None),  # --quiet prints only the name
        ("2: digest: sha256:short size: 1\n", None),
        ("", None),
    ],
)
def test_the_pushed_digest_is_read_from_dockers_last_digest_line(
    output: str, digest: str | None
) -> None:
    from pallet_dev.tools.docker import pushed_digest

    assert pushed_digest(output) == digest


class PushingRunner:
    """`docker push` as Docker prints it; records what ran."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.argvs: list[list[str]] = []

    def run(self, argv: list[str], **_: object) -> object:
        from pallet_dev.runner import CommandResult

        self.argvs.append(list(argv))
        return CommandResult(tuple(argv), 0, self.output, "", 0.01)


def test_push_returns_the_digest_docker_reported_and_asks_nothing_else() -> None:
    from pallet_dev.tools.docker import Docker

    runner = PushingRunner(PUSH_OUTPUT)
    digest = Docker(runner).push("localhost:5077/raw/q:2", timeout=5)  # type: ignore[arg-type]
    assert digest == "sha256:57ce26603cabae225ea2a7e6a36a41eac761f27c8d96cdf81d9566822aaf41cf"
    assert runner.argvs == [["docker", "push", "localhost:5077/raw/q:2"]]
