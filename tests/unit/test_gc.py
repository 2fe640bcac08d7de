"""`pallet-dev gc`: which tags go (keep N, older than, agents' and shared digests), the
registry API it reads, and the command on the Docker backend's fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.errors import OperationFailed, UsageError
from pallet_dev.registry_api import RegistryApi, parse_created
from pallet_dev.registry_gc import (
    Policy,
    TagDecision,
    TagInfo,
    decide,
    parse_duration,
    read_plan,
)
from pallet_dev.context import AppContext
from tests.conftest import clear_config_env
from tests.support.oci_registry import OciRegistry

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def tag(
    name: str, hours_ago: float | None, digest: str | None = None, children: tuple[str, ...] = ()
) -> TagInfo:
    created = NOW - timedelta(hours=hours_ago) if hours_ago is not None else None
    return TagInfo("team/api", name, digest or f"sha256:{name}", created, children)


def going(decisions: list[TagDecision]) -> list[str]:
    return [d.info.tag for d in decisions if d.delete]


def policy(keep: int | None = None, older_than: str | None = None) -> Policy:
    return Policy(
        now=NOW,
        keep=keep,
        older_than=parse_duration(older_than) if older_than else None,
        older_than_text=older_than or "",
    )


# --- durations ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1d12h", 129600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "7", "d", "7 days", "-1d", "1.5h", "7y"])
def test_a_bad_duration_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="is not a duration") as caught:
        parse_duration(bad)
    assert caught.value.hint and "30m" in caught.value.hint


# --- selection ---------------------------------------------------------------------------
def test_keep_n_keeps_the_newest_by_created_time_whatever_the_names() -> None:
    tags = [tag("b", 5), tag("a", 1), tag("c", 3), tag("d", 10)]
    decisions = decide(tags, policy(keep=2), frozenset())
    assert [d.info.tag for d in decisions] == ["a", "c", "b", "d"]  # newest first
    assert going(decisions) == ["b", "d"]
    assert decisions[-1].reason == "not among the 2 newest"
    assert decisions[0].reason == "among the 2 newest"


def test_without_keep_or_older_than_no_tag_goes() -> None:
    decisions = decide([tag("a", 1), tag("b", 900)], policy(), frozenset())
    assert going(decisions) == [] and decisions[0].reason == "no --keep or --older-than given"


def test_older_than_alone_and_an_unknown_age_is_kept() -> None:
    tags = [tag("fresh", 2), tag("old", 30), tag("undated", None)]
    decisions = decide(tags, policy(older_than="1d"), frozenset())
    assert going(decisions) == ["old"]
    undated = next(d for d in decisions if d.info.tag == "undated")
    assert "age is unknown" in undated.reason


def test_keep_is_a_floor_when_both_are_given() -> None:
    tags = [tag("t1", 100), tag("t2", 90), tag("t3", 80), tag("t4", 1)]
    # a tag goes only when it is past the N newest and older than the duration
    assert going(decide(tags, policy(keep=1, older_than="85h"), frozenset())) == ["t2", "t1"]
    assert going(decide(tags, policy(keep=3, older_than="85h"), frozenset())) == ["t1"]
    assert going(decide(tags, policy(keep=3, older_than="200h"), frozenset())) == []


def test_undated_tags_count_as_the_oldest_ordered_by_name() -> None:
    tags = [tag("v1", None), tag("v3", None), tag("v2", 50)]
    decisions = decide(tags, policy(keep=2), frozenset())
    assert [d.info.tag for d in decisions] == ["v2", "v3", "v1"]
    assert going(decisions) == ["v1"]


def test_an_agents_digest_is_never_deleted() -> None:
    tags = [tag("new", 1), tag("running", 50, "sha256:agent"), tag("old", 60)]
    decisions = decide(tags, policy(keep=1), frozenset({"sha256:agent"}))
    assert going(decisions) == ["old"]
    held = next(d for d in decisions if d.info.tag == "running")
    assert held.held and held.reason == "a running agent uses this digest"


def test_a_digest_shared_with_a_kept_tag_stays() -> None:
    tags = [tag("latest", 1, "sha256:same"), tag("v1", 1, "sha256:same"), tag("v0", 9)]
    # keep 1: "latest" would go by the policy, but deleting its digest would take "v1" too
    decisions = decide(tags, policy(keep=1), frozenset())
    assert going(decisions) == ["v0"]
    # the same digest has the same created time: the name breaks the tie (v1 first)
    shared = next(d for d in decisions if d.info.tag == "latest")
    assert shared.held and shared.reason == "same digest as the kept tag v1"


def test_an_image_inside_a_kept_index_stays() -> None:
    tags = [
        tag("multi", 1, "sha256:index", children=("sha256:child",)),
        tag("x", 5, "sha256:child"),
    ]
    assert going(decide(tags, policy(keep=1), frozenset())) == []


# --- the registry API and the plan -------------------------------------------------------
@pytest.fixture
def registry() -> Iterator[OciRegistry]:
    server = OciRegistry().start()
    yield server
    server.stop()


def test_created_times_as_registries_write_them() -> None:
    assert parse_created(b'{"created":"2026-12-06T10:00:00.123456789Z"}') == datetime(
        2026, 12, 6, 10, 0, 0, 123456, tzinfo=timezone.utc
    )
    assert parse_created(b'{"created":"1970-01-01T00:00:00Z"}') is None  # reproducible build
    assert parse_created(b'{"os":"linux"}') is None
    assert parse_created(b"not json") is None


def test_the_plan_reads_tags_digests_and_created_times(registry: OciRegistry) -> None:
    for hour in range(5):
        registry.add_image(
            "team/api", f"v{hour}", f"2026-12-06T0{hour}:00:00Z", f"l{hour}".encode()
        )
    running = registry.add_image("team/agent", "old", "2026-12-01T00:00:00Z", b"agent")
    registry.add_image("team/agent", "new", "2026-12-06T00:00:00Z", b"agent2")
    child = registry.add_image("multi", None, "2026-12-05T00:00:00Z", b"m")
    registry.add_index("multi", "1", [child])
    plan = read_plan(RegistryApi(registry.url), policy(keep=2), frozenset({running}))
    by_name = {repo.name: repo for repo in plan.repositories}
    assert going(by_name["team/api"].decisions) == ["v2", "v1", "v0"]
    assert going(by_name["team/agent"].decisions) == []
    index = by_name["multi"].decisions[0]
    assert index.info.created == datetime(2026, 12, 5, tzinfo=timezone.utc)  # its image's
    assert plan.delete_untagged
    document = plan.to_dict()
    assert [d["tags"] for d in document["delete"]] == [["v2"], ["v1"], ["v0"]]
    assert document["protected_digests"] == [running]


def test_an_untagged_agent_digest_turns_delete_untagged_off(registry: OciRegistry) -> None:
    untagged = registry.add_image("team/api", None, "2026-12-01T00:00:00Z", b"was-dev")
    registry.add_image("team/api", "dev", "2026-12-06T00:00:00Z", b"dev")
    gone = "sha256:" + "0" * 64  # recorded, but no longer in the registry: no reason to hold
    plan = read_plan(RegistryApi(registry.url), policy(), frozenset({untagged, gone}))
    assert plan.untagged_protected == (untagged,) and not plan.delete_untagged
    assert "without --delete-untagged" in plan.notes[0]


def test_deletes_go_by_digest_and_a_refusal_is_one_sentence(registry: OciRegistry) -> None:
    digest = registry.add_image("team/api", "v1", None)
    api = RegistryApi(registry.url)
    assert api.delete("team/api", digest) is True
    assert api.delete("team/api", digest) is False  # gone already
    assert api.tags("team/api") == [] and api.manifest("team/api", "v1") is None
    registry.store.deletes_enabled = False
    other = registry.add_image("team/api", "v2", None)
    with pytest.raises(OperationFailed, match="refuses deletes") as caught:
        api.delete("team/api", other)
    assert caught.value.hint and "deleteEnabled" in caught.value.hint


# --- the command, on the Docker backend's fakes ------------------------------------------
@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: OciRegistry) -> Iterator[tuple]:
    from pallet_dev.paths import Paths
    from tests.fakes.fake_docker import new_container
    from tests.fakes.runner import FakeToolsRunner

    monkeypatch.chdir(tmp_path)
    clear_config_env(monkeypatch)
    monkeypatch.setenv("PALLET_DEV_NAME", "pdt-gc")
    monkeypatch.setenv("PALLET_DEV_BACKEND", "docker")
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(registry.port))
    runner = FakeToolsRunner(tools=("docker",))
    runner.serve_registry = False  # the in-memory registry answers on the port
    labels = {"dev.pallet.managed": "true", "dev.pallet.environment": "pdt-gc"}
    runner.state["containers"]["pdt-gc-registry"] = new_container("registry:3.1.2", labels)
    runner.state["volumes"]["pdt-gc-registry-data"] = labels
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    ctx = AppContext(paths=paths, _runner=runner)
    yield ctx, runner, registry
    runner.close()


def run_gc(ctx: AppContext, *argv: str) -> int:
    from pallet_dev.cli import run

    return run(["gc", *argv], context=ctx)


def fill(registry: OciRegistry, count: int) -> list[str]:
    return [
        registry.add_image(
            "team/api", f"v{i:02d}", f"2026-12-0{1 + i % 5}T{i:02d}:00:00Z", b"%d" % i
        )
        for i in range(count)
    ]


def test_dry_run_lists_what_would_go_and_the_commands_and_changes_nothing(
    env: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, runner, registry = env
    fill(registry, 6)
    assert run_gc(ctx, "--keep", "2", "--dry-run", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    report = document["registries"][0]
    assert document["dry_run"] and document["backend"] == "docker"
    assert len(report["delete"]) == 4 and report["delete_untagged"]
    names = [step["name"] for step in report["collection"]["steps"]]
    assert names[0].startswith("Stop the registry container")
    gc_argv = report["collection"]["steps"][1]["argv"]
    assert gc_argv[:3] == ["docker", "run", "--rm"] and gc_argv[-1] == "--delete-untagged"
    assert "type=volume,src=pdt-gc-registry-data,dst=/var/lib/registry" in gc_argv
    assert registry.store.deletes == [] and "gc_runs" not in runner.state
    assert not any(call[1:3] == ["container", "stop"] for call in runner.calls)


def test_gc_deletes_stops_the_registry_collects_and_starts_it_again(
    env: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, runner, registry = env
    digests = fill(registry, 5)
    ctx.record_active(
        "pdt-gc",
        "docker",
        registry.url,
        {"agents": [{"name": "api", "backend": "docker", "desired": 1, "digest": digests[0]}]},
    )
    assert run_gc(ctx) == 0  # without --keep or --older-than: only the collection
    assert registry.store.deletes == [] and len(runner.state["gc_runs"]) == 1
    capsys.readouterr()
    runner.reset_calls()
    assert run_gc(ctx, "--keep", "2") == 0
    out = capsys.readouterr()
    assert sorted(registry.tag_names("team/api")) == ["v00", "v03", "v04"]
    assert "= v00" in out.out and "a running agent uses this digest" in out.out
    assert "Freed" in out.out and "stopped" in out.out
    verbs = [" ".join(call[1:3]) for call in runner.calls]
    stop, gc, start = (
        verbs.index("container stop"),
        verbs.index("run --rm"),
        verbs.index("container start"),
    )
    assert stop < gc < start  # no push can reach the registry while the collection runs
    assert runner.state["containers"]["pdt-gc-registry"]["running"]
    assert runner.state["gc_runs"][-1]["args"][-1] == "--delete-untagged"
    assert "Stopping the registry container" in out.err


def test_gc_json_reports_bytes_and_the_method(
    env: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, _, registry = env
    fill(registry, 3)
    assert run_gc(ctx, "--older-than", "1h", "--json") == 0
    report = json.loads(capsys.readouterr().out)["registries"][0]
    assert len(report["deleted"]) == 3
    assert report["bytes_before"] == 1_500_000 and report["bytes_freed"] == 0
    assert "stopped" in report["collection"]["method"]
    assert report["collection"]["summary"].endswith("eligible for deletion")


def test_gc_without_a_registry_is_a_prerequisite_error(
    env: tuple, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.http_servers import free_port

    ctx, _, _ = env
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    assert run_gc(ctx, "--keep", "1") == 3
    err = capsys.readouterr().err
    assert "does not answer" in err and "pallet-dev up" in err


def test_bad_flags_are_usage_errors(env: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    ctx, _, _ = env
    assert run_gc(ctx, "--older-than", "soon") == 2
    assert "is not a duration" in capsys.readouterr().err
    assert run_gc(ctx, "--keep", "-1") == 2
    assert "--keep must be 0 or more" in capsys.readouterr().err


def test_a_failed_collection_still_starts_the_registry_again(
    env: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, runner, registry = env
    fill(registry, 2)
    runner.state["host_images"].remove("registry:3.1.2")  # the one-off container cannot start
    assert run_gc(ctx, "--keep", "1") == 1
    assert runner.state["containers"]["pdt-gc-registry"]["running"]
    assert "Starting the registry container" in capsys.readouterr().err


EMPTY_STORAGE = (
    "failed to garbage collect: failed to mark: filesystem: Path not found: "
    "/docker/registry/v2/repositories"
)


def test_gc_on_a_registry_nothing_was_pushed_to_has_nothing_to_collect(
    env: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, runner, _ = env
    # what `registry garbage-collect` 3.1.2 says on an empty volume (exit 1)
    runner.state["fail"].append({"match": ["docker", "run", "--rm"], "stderr": EMPTY_STORAGE})
    assert run_gc(ctx) == 0
    out = capsys.readouterr().out
    assert "  no repositories" in out
    assert "\n  nothing to collect: the registry holds no image yet\n" in out
    assert runner.state["containers"]["pdt-gc-registry"]["running"]
    runner.state["fail"].append(
        {"match": ["docker", "run", "--rm"], "stderr": "failed to mark: Path not found: /x"}
    )
    assert run_gc(ctx) == 1  # any other failure still is one
    assert "Path not found: /x" in capsys.readouterr().err


def test_dry_run_as_text_names_each_tag_and_the_commands(
    env: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, runner, registry = env
    fill(registry, 3)
    assert run_gc(ctx, "--keep", "1", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "team/api: 3 tag(s), would delete 2, keeping 1" in out
    assert "    - v01  sha256:" in out and "not among the 1 newest" in out
    assert "Garbage collection (with --delete-untagged) would run:" in out
    assert "docker container stop --time 10 pdt-gc-registry" in out
    assert registry.store.deletes == []


# --- gc --mirrors: the command's part (the backends' own: test_*_mirrors_gc.py) ----------
HUB = {"upstream": "docker.io", "remote_url": "https://registry-1.docker.io"}


def with_cache(ctx: AppContext, runner: Any, tmp_path: Path, *, old: bool) -> Path:
    """pallet-dev.yaml with the docker.io cache only; the cache running, its volume holding
    team/app fetched 3 days ago (or now)."""
    import os

    from pallet_dev.backends.steps import Deadline
    from pallet_dev.backends.table import make_backend

    (tmp_path / "pallet-dev.yaml").write_text(json.dumps({"mirrors": [HUB]}))
    runner.state["volume_root"] = str(tmp_path / "volumes")
    runner.serve_registry = True  # the cache's port (the registry container publishes none)
    config = ctx.load_settings()
    backend = make_backend("docker", config, runner, ctx.paths)
    backend.mirrors.start_fresh(config.mirrors[0], Deadline(10))
    repo = tmp_path / "volumes" / "pdt-gc-mirror-docker-io-data" / "docker/registry/v2"
    link = repo / "repositories/team/app/_layers/sha256" / ("ab" * 32) / "link"
    link.parent.mkdir(parents=True)
    (repo / "repositories/team/app/_manifests").mkdir()
    (repo / "blobs/sha256/ab" / ("ab" * 32)).mkdir(parents=True)
    (repo / "blobs/sha256/ab" / ("ab" * 32) / "data").write_bytes(b"z" * 2_000_000)
    link.write_text("sha256:" + "ab" * 32)
    fetched = (NOW if not old else datetime.now(timezone.utc) - timedelta(days=3)).timestamp()
    os.utime(link, (fetched, fetched))
    runner.reset_calls()
    return repo / "repositories" / "team" / "app"


def test_gc_without_mirrors_never_looks_at_the_caches(
    env: tuple, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ctx, runner, _ = env
    app = with_cache(ctx, runner, tmp_path, old=True)
    assert run_gc(ctx, "--older-than", "1d", "--json") == 0
    assert "mirrors" not in json.loads(capsys.readouterr().out)
    assert app.is_dir() and not any("cp" in call for call in runner.calls)


def test_gc_mirrors_dry_run_lists_the_repositories_and_commands(
    env: tuple, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ctx, runner, _ = env
    app = with_cache(ctx, runner, tmp_path, old=True)
    assert run_gc(ctx, "--mirrors", "--older-than", "1d", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Pull-through caches: not fetched within 1d" in out
    assert (
        "docker.io (volume pdt-gc-mirror-docker-io-data): 1 repository, would delete 1 "
        "and 1 blob (size unknown)" in out
    )
    assert "    - team/app  last fetched 20" in out
    assert "docker container stop --time 10 pdt-gc-mirror-docker-io" in out
    assert "(pallet-dev itself)" in out  # the pruning step runs no command
    assert app.is_dir() and runner.state["containers"]["pdt-gc-mirror-docker-io"]["running"]


def test_gc_mirrors_prunes_and_reports_what_it_freed(
    env: tuple, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ctx, runner, _ = env
    app = with_cache(ctx, runner, tmp_path, old=True)
    assert run_gc(ctx, "--mirrors", "--older-than", "1d") == 0
    out = capsys.readouterr()
    assert "1 repository, deleted 1 and 1 blob (2.0 MB)" in out.out
    assert "the cache container pdt-gc-mirror-docker-io was stopped" in out.out
    assert "    Freed 2.0 MB (storage 2.0 MB before, 0.0 MB after)." in out.out
    assert "Stopping the cache container pdt-gc-mirror-docker-io" in out.err
    assert not app.exists()
    events = [json.loads(line) for line in ctx.paths.log_file().read_text().splitlines()]
    assert any(e.get("mirror") == "docker.io" and e.get("bytes_freed") for e in events)


def test_gc_mirrors_json_and_a_cache_with_nothing_old(
    env: tuple, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ctx, runner, _ = env
    with_cache(ctx, runner, tmp_path, old=False)
    assert run_gc(ctx, "--mirrors", "--older-than", "1d") == 0
    assert "nothing to delete; the cache was not stopped." in capsys.readouterr().out
    assert run_gc(ctx, "--mirrors", "--older-than", "1d", "--json") == 0
    [report] = json.loads(capsys.readouterr().out)["mirrors"]
    assert report["repositories"][0]["action"] == "keep" and report["method"] == ""
    assert ["docker", "container", "stop", "--time", "10", "pdt-gc-mirror-docker-io"] not in (
        runner.calls
    )


def test_gc_mirrors_without_caches_says_so(
    env: tuple, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ctx, _, _ = env
    (tmp_path / "pallet-dev.yaml").write_text(json.dumps({"mirrors": []}))
    assert run_gc(ctx, "--mirrors") == 0
    out = capsys.readouterr().out
    assert "Pull-through caches: everything (no --older-than)\n  no caches configured" in out
