"""Agents: config errors, the content hash (which files count), the plan, the chart values."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.agents.context_hash import DockerIgnore, build_hash, context_files
from pallet_dev.agents.images import AgentImage
from pallet_dev.agents.spec import AgentEndpoint, deployments
from pallet_dev.backends.docker_agents import DockerAgents, container_name, cpus, memory_bytes
from pallet_dev.backends.kind_agents import chart_values, fingerprint, find_agents_chart
from pallet_dev.config import load_config
from pallet_dev.errors import ConfigError
from pallet_dev.settings import Settings, from_config
from pallet_dev.tools.docker import Docker
from tests.fakes.runner import FakeToolsRunner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pallet"


def agent_tree(tmp_path: Path, *names: str) -> Path:
    for name in names:
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
        (folder / "main.sh").write_text("echo hi\n")
    return tmp_path


def config_text(body: str) -> str:
    return "name: env1\nagents:\n" + body


def load(tmp_path: Path, body: str) -> object:
    (tmp_path / "pallet-dev.yaml").write_text(config_text(body))
    config, _ = load_config(cwd=tmp_path, environ={})
    return config


# --- config ---------------------------------------------------------------------------
def test_agents_load_with_contexts_resolved_against_the_config_folder(tmp_path: Path) -> None:
    agent_tree(tmp_path, "planner")
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    (tmp_path / "pallet-dev.yaml").write_text(
        config_text("  - name: planner\n    build: {context: agents/planner}\n")
    )
    config, _ = load_config(cwd=sub, environ={})  # found in a parent folder
    agent = config.agents[0]
    assert agent.build is not None
    assert agent.build.context == str((tmp_path / "agents" / "planner").resolve())
    assert (agent.port, agent.health, agent.replicas) == (8080, "/healthz", 1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  - name: Bad_Name\n    image: x:1\n", r"pallet-dev.yaml:3: agents.0.name"),
        (
            "  - name: a\n    image: x:1\n  - name: a\n    image: y:1\n",
            r"agent names must be unique; repeated: a",
        ),
        ("  - name: a\n", r"exactly one of build .* or image"),
        (
            "  - name: a\n    image: x:1\n    build: {context: agents/planner}\n",
            r"exactly one of build",
        ),
        ("  - name: a\n    build: {context: nowhere}\n", r"pallet-dev.yaml:4: .*not a folder"),
        (
            "  - name: a\n    build: {context: agents/planner, dockerfile: Other}\n",
            r"has no Dockerfile at .*Other",
        ),
        ("  - name: a\n    image: x:1\n    env: {PALLET_REGISTRY: x}\n", r"set by pallet-dev"),
        ("  - name: a\n    image: x:1\n    port: true\n", r"agents.0.port"),
        ("  - name: a\n    image: x:1\n    replicas: 1.0\n", r"agents.0.replicas"),
        ("  - name: a\n    image: x:1\n    health: healthz\n", r"agents.0.health"),
        ("  - name: a\n    image: x:1\n    colour: red\n", r"agents.0.colour: unknown key"),
        ("  - name: registry\n    image: x:1\n", r"reserved"),
        ("  - name: a\n    image: x:1\n    resources: {memory: lots}\n", r"resources.memory"),
    ],
)
def test_bad_agents_are_one_clear_config_error(tmp_path: Path, body: str, expected: str) -> None:
    agent_tree(tmp_path, "planner")
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, body)


def test_a_context_outside_the_config_folder_must_exist_and_says_where(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    agent_tree(tmp_path / "elsewhere", "planner")
    (project / "pallet-dev.yaml").write_text(
        config_text("  - name: p\n    build: {context: ../elsewhere/agents/planner}\n")
    )
    config, _ = load_config(cwd=project, environ={})
    assert config.agents[0].build is not None
    (project / "pallet-dev.yaml").write_text(
        config_text("  - name: p\n    build: {context: ../x}\n")
    )
    with pytest.raises(ConfigError, match=r"outside .*project"):
        load_config(cwd=project, environ={})


def test_an_agent_and_a_service_cannot_share_a_name(tmp_path: Path) -> None:
    (tmp_path / "pallet-dev.yaml").write_text(
        "agents:\n  - name: a\n    image: x:1\nservices:\n  - name: a\n    url: http://x/\n"
    )
    with pytest.raises(ConfigError, match="both an agent and a service"):
        load_config(cwd=tmp_path, environ={})


# --- the content hash ---------------------------------------------------------------
def test_dockerignore_follows_dockers_rules() -> None:
    rules = DockerIgnore(
        ["# comment", "*.pyc", "build/", "!build/keep.txt", "**/tmp", "/docs/*.md"]
    )
    assert rules.excluded("a.pyc") and not rules.excluded("sub/a.pyc")  # root only, as Docker
    assert rules.excluded("build/out.o") and not rules.excluded("build/keep.txt")
    assert rules.excluded("a/b/tmp/c") and rules.excluded("tmp")
    assert rules.excluded("docs/a.md") and not rules.excluded("docs/x/a.md")
    assert rules.excluded(".git/HEAD") and not rules.excluded("src/main.py")


def test_the_hash_changes_with_what_docker_would_send_and_only_that(tmp_path: Path) -> None:
    context = agent_tree(tmp_path, "a") / "agents" / "a"
    (context / ".dockerignore").write_text("*.log\n.cache\n")
    first = build_hash(context, "Dockerfile")
    assert len(first) == 16 and first == build_hash(context, "Dockerfile")
    (context / "debug.log").write_text("noise")
    (context / ".cache").mkdir()
    (context / ".cache" / "x").write_text("noise")
    (context / ".git").mkdir()
    (context / ".git" / "HEAD").write_text("ref")
    assert build_hash(context, "Dockerfile") == first, "ignored files changed the hash"
    assert sorted(context_files(context)) == [".dockerignore", "Dockerfile", "main.sh"]
    (context / "main.sh").write_text("echo changed\n")
    changed = build_hash(context, "Dockerfile")
    assert changed != first
    assert build_hash(context, "Dockerfile", args={"A": "1"}) != changed
    assert build_hash(context, "Dockerfile", target="t") != changed
    (context / "main.sh").chmod(0o755)
    assert build_hash(context, "Dockerfile") != changed, "the executable bit is content"


def test_the_example_agents_hash_apart() -> None:
    hashes = {
        build_hash(EXAMPLES / "agents" / name, "Dockerfile")
        for name in ("planner", "tracker", "packer")
    }
    assert len(hashes) == 3


# --- what both backends deploy --------------------------------------------------------
def example_config() -> Settings:
    config, path = load_config(EXAMPLES / "pallet-dev.yaml", environ={})
    return from_config(config, path)


def test_a_hash_the_caller_computed_is_not_computed_again(tmp_path: Path) -> None:
    """`dev` hashes every watched agent to find the changed ones; the build reuses that."""
    from pallet_dev.agents.images import AgentImages

    agent_tree(tmp_path, "planner")
    (tmp_path / "pallet-dev.yaml").write_text(
        config_text("  - name: planner\n    build: {context: agents/planner}\n")
    )
    agent = from_config(load_config(cwd=tmp_path, environ={})[0]).agents[0]
    fresh = AgentImages("env1", [agent], FakeToolsRunner(), registry_url="", registry_host="")
    assert fresh.content_tag(agent) == build_hash(tmp_path / "agents" / "planner", "Dockerfile")
    given = AgentImages(
        "env1",
        [agent],
        FakeToolsRunner(),
        registry_url="",
        registry_host="",
        tags={"planner": "t1"},
    )
    shutil.rmtree(tmp_path / "agents")  # nothing left to read
    assert given.content_tag(agent) == "t1"


def images_for(config: Settings) -> list[AgentImage]:
    return [
        AgentImage(a.name, "localhost:5000", f"pallet-example/{a.name}", "t", f"sha256:{i}", True)
        for i, a in enumerate(config.agents)
    ]


def test_both_backends_get_the_same_image_and_environment_but_their_registry_address() -> None:
    config = example_config()
    docker_side = deployments(
        config.agents, images_for(config), env_name="e", registry_address="e-registry:5000"
    )
    kind_side = deployments(
        config.agents,
        images_for(config),
        env_name="e",
        registry_address="registry-pallet-registry.pallet.svc.cluster.local:5000",
    )
    for left, right in zip(docker_side, kind_side):
        assert left.image == right.image and "@sha256:" in left.image
        assert {k: v for k, v in left.env.items() if k != "PALLET_REGISTRY"} == {
            k: v for k, v in right.env.items() if k != "PALLET_REGISTRY"
        }
        assert left.env["PALLET_AGENT"] == left.name


def test_docker_agent_spec_by_digest_on_the_network_with_limits() -> None:
    config = example_config()
    planned = deployments(
        config.agents, images_for(config), env_name="e", registry_address="e-registry:5000"
    )
    agents = DockerAgents(Docker(FakeToolsRunner(tools=("docker",))), "e")
    spec = agents.spec(planned[0], 1, None)
    argv = spec.run_argv()
    assert spec.name == container_name("e", "planner", 1) == "e-agent-planner"
    assert container_name("e", "planner", 2) == "e-agent-planner-2"
    assert argv[argv.index("--network") + 1] == "e"
    assert argv[argv.index("--memory") + 1] == str(32 * 1024 * 1024)
    assert "127.0.0.1::8080" in argv and argv[-1].startswith("localhost:5000/pallet-example/")
    # a port Docker chose is not part of the spec: keeping it is no change
    kept = agents.spec(planned[0], 1, 32768)
    assert kept.labels["dev.pallet.spec-hash"] == spec.labels["dev.pallet.spec-hash"]
    plan = agents.plan(planned)
    assert plan[0].argv[:3] == ["docker", "network", "create"]
    assert any(step.argv[:2] == ["docker", "run"] for step in plan)


def test_quantities() -> None:
    assert memory_bytes("128Mi") == 128 * 1024**2 and memory_bytes("1G") == 10**9
    assert cpus("500m") == "0.5" and cpus("2") == "2"


def test_the_agents_chart_values_and_fingerprint() -> None:
    config = example_config()
    planned = deployments(
        config.agents, images_for(config), env_name="e", registry_address="r:5000"
    )
    values = chart_values(planned)
    assert [a["name"] for a in values["agents"]] == ["planner", "tracker", "packer"]
    assert values["agents"][0]["resources"] == {"memory": "32Mi"}
    chart = find_agents_chart()
    assert fingerprint(chart, values) == fingerprint(chart, json.loads(json.dumps(values)))
    values["agents"][0]["replicas"] = 2
    assert fingerprint(chart, values) != fingerprint(chart, chart_values(planned))


def test_agent_endpoints_survive_the_state_file() -> None:
    endpoint = AgentEndpoint("a", "docker", 2, ("http://127.0.0.1:1/h", "http://127.0.0.1:2/h"))
    assert AgentEndpoint.from_dict(json.loads(json.dumps(endpoint.to_dict()))) == endpoint


def test_up_says_when_an_agent_builds_from_outside_the_config_folder(tmp_path: Path) -> None:
    import io

    from pallet_dev.commands.up import warn_outside_contexts
    from pallet_dev.context import AppContext
    from pallet_dev.output import Steps

    project = tmp_path / "project"
    agent_tree(project, "inside")
    agent_tree(tmp_path / "elsewhere", "outside")
    (project / "pallet-dev.yaml").write_text(
        config_text(
            "  - name: inside\n    build: {context: agents/inside}\n"
            "  - name: outside\n    build: {context: ../elsewhere/agents/outside}\n"
        )
    )
    ctx = AppContext(config_file=project / "pallet-dev.yaml")
    config, ctx.config_path = load_config(ctx.config_file, environ={})
    stream = io.StringIO()
    warn_outside_contexts(ctx, config.agents, Steps(stream))
    said = stream.getvalue()
    assert "agent 'outside' builds from" in said and "outside " + str(project) in said
    assert "'inside'" not in said


def test_the_kind_plan_deploys_the_agents_chart_by_digest(tmp_path: Path) -> None:
    from pallet_dev.backends.base import UpOptions
    from pallet_dev.backends.kind import KindBackend
    from pallet_dev.paths import Paths

    config = example_config()
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    backend = KindBackend(config, FakeToolsRunner(), paths)
    assert backend.agent_registry_address.startswith("registry-pallet-registry.pallet.svc")
    planned = deployments(
        config.agents,
        images_for(config),
        env_name=config.name,
        registry_address=backend.agent_registry_address,
    )
    steps = backend.plan_agents(planned, UpOptions(timeout=60))
    history, upgrade, check = steps
    assert history.argv[:3] == ["helm", "history", "agents"]
    assert upgrade.argv[:5] == ["helm", "upgrade", "--install", "agents", str(find_agents_chart())]
    assert "--kube-context" in upgrade.argv and "kind-pallet-example" in upgrade.argv
    assert "localhost:5000/pallet-example/planner@sha256:0" in (upgrade.detail or "")
    assert check.argv == [] and "/proxy" in (check.detail or "")


def test_dev_replaces_only_the_changed_agent_on_the_ports_its_last_deploy_left(
    mocker: Any,
) -> None:
    import io
    from dataclasses import replace

    from pallet_dev.output import Steps

    config = example_config()
    planned = [
        replace(d, host_port=41000 + 10 * i)
        for i, d in enumerate(
            deployments(config.agents, images_for(config), env_name="e", registry_address="r")
        )
    ]
    runner = FakeToolsRunner(tools=("docker",))
    runner.state["host_images"] += [d.image for d in planned]
    mocker.patch.object(DockerAgents, "_await_healthy")  # nothing listens in the fake world
    steps = Steps(io.StringIO())
    first = DockerAgents(Docker(runner), "e")
    # without a deploy before it, a rollout is a full deploy: it lists what runs
    first.roll_out(planned, ["packer"], time.monotonic() + 60, steps)
    assert "docker container ls" in runner.commands()

    newer = [*planned[:2], replace(planned[2], image=planned[2].image + "0", digest="sha256:9")]
    runner.state["host_images"].append(newer[2].image)
    runner.reset_calls()
    state = first.roll_out(newer, ["packer"], time.monotonic() + 60, steps)
    assert runner.commands() == ["docker container rm", "docker run"]
    assert runner.calls[0][-1] == "e-agent-packer"
    packer = runner.state["containers"]["e-agent-packer"]
    assert packer["image"] == newer[2].image and packer["ports"][0]["hostPort"] == "41020"
    assert [e.urls[0] for e in state.endpoints] == [
        "http://127.0.0.1:41000/healthz",
        "http://127.0.0.1:41010/healthz",
        "http://127.0.0.1:41020/healthz",
    ]
    # what it replaced is what a full deploy would have made: the next `up` changes nothing
    runner.reset_calls()
    DockerAgents(Docker(runner), "e").deploy(newer, time.monotonic() + 60, steps)
    assert "docker run" not in runner.commands()


def test_kind_sets_images_only_while_the_release_is_where_they_were_applied(
    tmp_path: Path,
) -> None:
    from pallet_dev.backends import kind_agents_record
    from pallet_dev.backends.kind_agents_record import AppliedValues
    from pallet_dev.tools.helm import HelmRevision

    config = example_config()
    values = chart_values(
        deployments(config.agents, images_for(config), env_name="e", registry_address="r")
    )
    latest = HelmRevision(3, "deployed", "pallet-agents-0.1.0", "", "pallet-dev abc", "")
    applied = AppliedValues(3, "pallet-agents-0.1.0", "pallet-dev abc", values)
    path = tmp_path / "applied.json"
    path.write_text(applied.to_json())
    assert kind_agents_record.read(path) == applied
    path.write_text("{not json")
    assert kind_agents_record.read(path) is None
    assert kind_agents_record.read(tmp_path / "missing.json") is None

    newer = json.loads(json.dumps(values))
    assert applied.holds(latest)
    assert kind_agents_record.image_changes(applied.values, newer) == []
    newer["agents"][2]["image"] += "0"
    newer["agents"][0]["image"] += "0"
    assert kind_agents_record.image_changes(applied.values, newer) == ["planner", "packer"]
    # Helm moved on (a new revision, another chart, a failed upgrade): Helm decides
    for moved_on in (
        HelmRevision(4, "deployed", "pallet-agents-0.1.0", "", "pallet-dev abc", ""),
        HelmRevision(3, "deployed", "pallet-agents-0.2.0", "", "pallet-dev abc", ""),
        HelmRevision(3, "failed", "pallet-agents-0.1.0", "", "pallet-dev abc", ""),
        HelmRevision(3, "deployed", "pallet-agents-0.1.0", "", "pallet-dev def", ""),
        None,
    ):
        assert not applied.holds(moved_on)
    # anything besides an image: Helm
    for change in (
        lambda v: v["agents"][1].update(replicas=2),
        lambda v: v["agents"][1]["env"].update(GREETING="hi"),
        lambda v: v["agents"].pop(),
        lambda v: v["agents"].reverse(),
        lambda v: v.update(extra=1),
    ):
        other = json.loads(json.dumps(newer))
        change(other)
        assert kind_agents_record.image_changes(applied.values, other) is None
