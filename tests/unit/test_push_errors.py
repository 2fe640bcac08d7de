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
