"""A team registry that wants a login to read (Harbor's private projects, distribution with
htpasswd): manifest checks answer its challenge with the user's Docker login."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from pallet_dev.backends.team_registry import DockerLogin, TeamRegistry, try_push
from pallet_dev.errors import OperationFailed
from pallet_dev.probe import manifest_digest
from tests.support.oci_registry import OciRegistry

LOGIN = ("alice", "s3cret")
GOOD = base64.b64encode(b"alice:s3cret").decode()
BAD = base64.b64encode(b"alice:wrong").decode()


@pytest.fixture(params=["basic", "bearer"])
def team(request: pytest.FixtureRequest) -> Iterator[OciRegistry]:
    registry = OciRegistry(auth=request.param, login=LOGIN).start()
    registry.add_image("team/alice/planner", "abc", None)
    yield registry
    registry.stop()


def test_the_users_login_reads_the_manifest(team: OciRegistry) -> None:
    digest = manifest_digest(team.url, "team/alice/planner", "abc", login=GOOD)
    assert digest and digest == team.store.tags["team/alice/planner"]["abc"]
    assert manifest_digest(team.url, "team/alice/planner", "nope", login=GOOD) is None
    if team.auth == "bearer":  # a pull-only token for that repository
        assert "scope=repository%3Ateam%2Falice%2Fplanner%3Apull" in team.token_scopes[0]


def test_without_a_login_it_says_to_log_in(team: OciRegistry) -> None:
    with pytest.raises(OperationFailed) as caught:
        manifest_digest(team.url, "team/alice/planner", "abc")
    assert "answered 401" in caught.value.message and "wants a login" in caught.value.message
    assert f"docker login 127.0.0.1:{team.port}" in str(caught.value.hint)


def test_a_wrong_login_is_one_sentence(team: OciRegistry) -> None:
    with pytest.raises(OperationFailed) as caught:
        manifest_digest(team.url, "team/alice/planner", "abc", login=BAD)
    if team.auth == "bearer":  # the token service refuses it
        assert "refused to read team/alice/planner" in caught.value.message
        assert "token service answered 401" in caught.value.message
    else:  # the registry itself refuses the Basic login
        assert "answered 401" in caught.value.message


def test_an_open_registry_never_gets_the_login() -> None:
    registry = OciRegistry().start()
    try:
        registry.add_image("x", "1", None)
        assert manifest_digest(registry.url, "x", "1", login=GOOD) is not None
    finally:
        registry.stop()


def test_doctor_push_check_takes_the_same_challenge(team: OciRegistry) -> None:
    registry = TeamRegistry("http", f"127.0.0.1:{team.port}", "team")
    refused = try_push(registry, "team/alice/probe", DockerLogin(None, "no login"), 5.0)
    if team.auth == "bearer":
        assert refused == "its token service answered 401 (no login)"
    else:
        assert refused == "it asks for a login (no login)"
    assert try_push(registry, "team/alice/probe", DockerLogin(GOOD), 5.0) == ""
