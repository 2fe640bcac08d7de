"""Hostile input: whatever a config file, a flag or a variable holds, pallet-dev answers
with exit 0 or 2, one short message and no traceback, in bounded time, calls no tool
that changes anything, and writes nothing outside PALLET_DEV_HOME.

Property-based (hypothesis) over every config field, YAML features (anchors, tags,
duplicate keys, several documents, non-UTF-8 bytes), the up/health flags and the
PALLET_DEV_* variables; fake docker/kind/helm/kubectl on PATH record any call.
"""

from __future__ import annotations

import io
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet_dev.cli import run as cli_run
from pallet_dev.config import (
    AGENT_NAME_PATTERN,
    ENV_VAR_PATTERN,
    IMAGE_PATTERN,
    RESERVED_AGENT_ENV,
)
from pallet_dev.config_mirrors import UPSTREAM_PATTERN
from pallet_dev.mirrors import mirror_slug
from tests.conftest import clear_config_env

FIELDS = [
    "name", "backend", "registry.image", "registry.port", "registry.bind_address",
    "kind.node_image", "chart.values", "chart.set", "services", "agents", "mirrors",
]  # fmt: skip
SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=50),
    st.text(min_size=2000, max_size=5000),
    st.sampled_from(["true", "0x10", "1e309", "5_001", "5001.0", "-1", "nan", "..", "-rm",
                     "$(id)", "a;b", "http://[::1", "http://127.0.0.1:99999/", "\u00e9\u00e9"]),
)  # fmt: skip
MAX_OUTPUT = 4000
MAX_SECONDS = 10.0


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder to run in, PALLET_DEV_HOME inside it, and recording fakes on PATH."""
    clear_config_env(monkeypatch)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("docker", "kind", "helm", "kubectl"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexit 1\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield tmp_path


def run(args: list[str]) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_run(args)
    return code, out.getvalue(), err.getvalue(), time.monotonic() - started


def assert_properties(sandbox: Path, code: int, err: str, seconds: float) -> None:
    assert code in (0, 2), f"exit {code}: {err[-500:]}"
    assert "Traceback" not in err and "internal error" not in err, err[-1500:]
    assert len(err) < MAX_OUTPUT, f"{len(err)} characters on stderr"
    assert seconds < MAX_SECONDS
    log = sandbox / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    mutating = [c for c in calls if not any(w in c for w in (" inspect", " version", " get "))]
    assert not mutating, f"tools called: {mutating}"
    written = sorted(p.name for p in (sandbox / "work").iterdir())
    assert set(written) <= {"pallet-dev.yaml"}, written


def nest(field: str, value: object) -> dict[str, object]:
    head, _, rest = field.partition(".")
    return {head: nest(rest, value) if rest else value}


# derandomized: the same examples on every run, so CI's verdict does not depend on luck
settings.register_profile("hostile", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@settings(settings.get_profile("hostile"))
@given(field=st.sampled_from(FIELDS), value=st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
def test_any_value_in_any_config_field(sandbox: Path, field: str, value: object) -> None:
    import yaml

    (sandbox / "work" / "pallet-dev.yaml").write_text(
        yaml.safe_dump(nest(field, value), allow_unicode=True)
    )
    code, _, err, seconds = run(["up", "--dry-run", "--json", "--prefer-docker"])
    assert_properties(sandbox, code, err, seconds)


YAML_FEATURES = [
    b"a: &x [1, 2]\nb: *x\n",
    b"lol: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
    b"name: a\nname: b\n",
    b"registry:\n  port: 5000\n  port: 5001\n",
    b"name: a\n---\nname: b\n",
    b"name: !!python/object:os.system [id]\n",
    b"name: !!binary aGVsbG8=\n",
    b"\xff\xfe\x00name: x\n",
    b"name: \x80\x81\n",
    b"[1, 2, 3]\n",
    b"registry: [\n",
    b"registry:\n  port: true\n",
    b"registry:\n  port: 5001.0\n",
    b"chart:\n  set: [noequals]\n",
    b"services:\n  - {name: s, url: 'http://[::1'}\n",
    b"services:\n  - {name: s, url: 'http://a..b/'}\n",
    b"agents:\n  - {name: a}\n",
    b"agents:\n  - {name: a, image: x, build: {context: .}}\n",
    b"agents:\n  - {name: a, build: {context: /nonexistent}}\n",
    b"agents:\n  - {name: A_B, image: x}\n",
    b"agents:\n  - {name: a, image: 'x', replicas: true}\n",
    b"x" * 2_000_000,
]


@pytest.mark.parametrize("content", YAML_FEATURES, ids=range(len(YAML_FEATURES)))
def test_yaml_features_and_bad_bytes(sandbox: Path, content: bytes) -> None:
    (sandbox / "work" / "pallet-dev.yaml").write_bytes(content)
    code, _, err, seconds = run(["up", "--dry-run", "--json", "--prefer-docker"])
    assert_properties(sandbox, code, err, seconds)
    assert code == 2 or content.startswith(b"name: !!binary"), err


def test_duplicate_keys_name_both_lines(sandbox: Path) -> None:
    (sandbox / "work" / "pallet-dev.yaml").write_text("registry:\n  port: 5000\n  port: 5001\n")
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker"])
    assert code == 2 and "pallet-dev.yaml:3: duplicate key 'port' (also at line 2)" in err


@pytest.mark.parametrize("target", ["fifo", "folder", "/dev/zero"])
def test_only_regular_files_are_read(sandbox: Path, target: str) -> None:
    path = sandbox / target
    if target == "fifo":
        os.mkfifo(path)
    elif target == "folder":
        path.mkdir()
    else:
        path = Path(target)
    for args in (["--config", str(path), "up", "--dry-run"], ["up", "--dry-run", "-f", str(path)]):
        code, _, err, seconds = run(args)
        assert code == 2 and "not a regular file" in err, err
        assert seconds < MAX_SECONDS


@settings(settings.get_profile("hostile"))
@given(
    flag=st.sampled_from(["--timeout", "--port", "--backend", "--values", "--set"]),
    value=st.one_of(
        st.sampled_from(["-1", "0", "nan", "inf", "1e309", "abc", "", "5_001", "99999", "bogus",
                         "=x", "noequals", "/dev/zero", "-rm"]),
        st.text(max_size=200).filter(lambda t: not t.startswith("-")),
    ),
)  # fmt: skip
def test_any_flag_value(sandbox: Path, flag: str, value: str) -> None:
    code, _, err, seconds = run(["up", "--dry-run", "--json", "--prefer-docker", flag, value])
    assert_properties(sandbox, code, err, seconds)


@settings(settings.get_profile("hostile"))
@given(
    var=st.sampled_from(
        ["PALLET_DEV_NAME", "PALLET_DEV_BACKEND", "PALLET_DEV_REGISTRY_IMAGE",
         "PALLET_DEV_REGISTRY_PORT", "PALLET_DEV_REGISTRY_BIND_ADDRESS",
         "PALLET_DEV_KIND_NODE_IMAGE"]
    ),
    value=st.one_of(
        st.sampled_from(["5_001", "5001.0", "+5001", "true", "0", "65536", "::", "x" * 5000]),
        st.text(max_size=100).filter(lambda t: "\x00" not in t),
    ),
)  # fmt: skip
def test_any_variable(sandbox: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    code, _, err, seconds = run(["up", "--dry-run", "--json", "--prefer-docker"])
    assert_properties(sandbox, code, err, seconds)


@pytest.mark.parametrize("value", ["5_001", "5001.0", "+5001", "true"])
def test_the_port_variable_takes_plain_digits_only(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", value)
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker"])
    assert code == 2 and "environment variable PALLET_DEV_REGISTRY_PORT" in err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "1e309"])
@pytest.mark.parametrize("command", ["up", "health"])
def test_timeouts_are_finite_and_positive(sandbox: Path, command: str, value: str) -> None:
    args = [command, "--timeout", value] + (["--dry-run"] if command == "up" else [])
    code, _, err, _ = run(args)
    assert code == 2 and "--timeout" in err and "out of range" in err, err


def test_a_long_bad_name_is_quoted_short(sandbox: Path) -> None:
    (sandbox / "work" / "pallet-dev.yaml").write_text("name: " + "x" * 100_000 + "\n")
    code, _, err, _ = run(["up", "--dry-run"])
    assert code == 2 and len(err) < 1000 and "..." in err


def test_contradicting_and_misplaced_flags(sandbox: Path) -> None:
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker", "--backend", "kind"])
    assert code == 2 and "--prefer-docker contradicts --backend kind" in err
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker", "-f", "missing.yaml"])
    assert code == 2 and "does not exist" in err
    (sandbox / "work" / "v.yaml").write_text("registry: {}\n")
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker", "-f", "v.yaml"])
    assert code == 0 and "apply to the kind backend only" in err


def test_chart_set_and_values_name_the_config_file(sandbox: Path) -> None:
    work = sandbox / "work"
    (work / "pallet-dev.yaml").write_text("chart:\n  set: [noequals]\n")
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker"])
    assert code == 2 and "pallet-dev.yaml:2: chart.set" in err, err
    (work / "vals").mkdir()
    (work / "vals" / "v.yaml").write_text("{}\n")
    (work / "pallet-dev.yaml").write_text("chart:\n  values: [vals/v.yaml]\n")
    (work / "sub").mkdir()
    os.chdir(work / "sub")  # relative to the config file, not to the current folder
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker"])
    assert code == 0, err


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_debug_variable_off_values(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PALLET_DEV_DEBUG", value)
    (sandbox / "work" / "pallet-dev.yaml").write_text("name: BAD\n")
    code, _, err, _ = run(["up", "--dry-run"])
    assert code == 2 and "Traceback" not in err


def test_usage_errors_read_like_every_other_error(sandbox: Path) -> None:
    for args in (["up", "--bogus"], ["up", "--port", "abc"], ["up", "--backend", "bogus"]):
        code, _, err, _ = run(args)
        assert code == 2 and err.startswith("pallet-dev: error: ") and "\n  fix: " in err, err
        assert "Usage:" not in err and "Try " not in err


@pytest.mark.parametrize(
    "value", ["file", "/proc/pallet-dev", "relative/home"], ids=["file", "proc", "relative"]
)
def test_pallet_dev_home(sandbox: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    if value == "file":
        (sandbox / "file").write_text("x")
        value = str(sandbox / "file")
    monkeypatch.setenv("PALLET_DEV_HOME", value)
    code, _, err, _ = run(["up", "--dry-run", "--prefer-docker"])
    if value == "relative/home":
        assert code == 0 and (sandbox / "work" / "relative" / "home").is_dir()
    else:
        assert code == 2 and "PALLET_DEV_HOME=" in err and "Traceback" not in err


@settings(settings.get_profile("hostile"))
@given(
    image=st.one_of(
        st.sampled_from(["nginx", "UPPER/case", "a:b:c", "x@sha256:zz", ":", "/", "a//b"]),
        st.text(max_size=80).filter(lambda t: t and not t.startswith("-") and "\x00" not in t),
    ),
    as_name=st.one_of(st.none(), st.text(max_size=80).filter(lambda t: "\x00" not in t)),
)  # fmt: skip
def test_any_push_name(sandbox: Path, image: str, as_name: str | None) -> None:
    """`push` with hostile names: a sentence and exit 0-3, never a traceback or a change
    (the fake docker has no such image, and no registry answers)."""
    argv = ["push", image, *(["--as", as_name] if as_name is not None else [])]
    if as_name is not None and as_name.startswith("-"):
        argv = ["push", image, f"--as={as_name}"]
    code, _, err, seconds = run(argv)
    assert code in (0, 1, 2, 3), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert seconds < 10 and len(err) < 4096


# --- the agents' inputs: each accepted, or refused with exit 2 naming its field path ---
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
AGENT_NAMES = st.one_of(
    st.from_regex(AGENT_NAME_PATTERN, fullmatch=True),
    st.sampled_from(["registry", "a", "-a", "a-", "A", "a_b", "1a", "a.b", "", "a" * 30, "a" * 31,
                     "xn--a", "a--b", "ümlaut"]),
    TEXT,
)  # fmt: skip
IMAGES = st.one_of(
    st.sampled_from(["x", "x:1", "localhost:5000/team/app:1.0", "UP/x", "UPPER", "a:b:c", "a//b",
                     "x@sha256:" + "a" * 64, "x@sha256:zz", "-rm", "a b", "nginx:", "[::1]:5/a"]),
    TEXT,
)  # fmt: skip
ENV_KEYS = st.one_of(
    st.from_regex(ENV_VAR_PATTERN, fullmatch=True).filter(lambda key: len(key) < 30),
    st.sampled_from([*RESERVED_AGENT_ENV, "1A", "A-B", "", "a b", "PATH"]),
    TEXT,
)
PORTS = st.one_of(
    st.integers(min_value=-5, max_value=70000),
    st.sampled_from([0, 1, 65535, 65536, True, False, "8080", 8080.0, None, 2**64]),
)
# build contexts and Dockerfiles against the project below: inside and outside the config
# folder, relative and absolute, missing, a file instead of a folder, unusable as a path
CONTEXTS = st.one_of(
    st.sampled_from(["agents/a", "./agents/a", "agents/a/", "agents/a/../a", "agents/missing",
                     "agents/file", "../outside", "../outside-missing", "@inside", "@outside", "",
                     "~nouser-pdt/x", "a\x00b", "x" * 300, "agents/" * 700]),
    TEXT,
)  # fmt: skip
DOCKERFILES = st.one_of(
    st.sampled_from(["Dockerfile", "Other.Dockerfile", "sub/Dockerfile", "missing", "../file",
                     "", "@outside-dockerfile", "x\x00", "x" * 300]),
    TEXT,
)  # fmt: skip
BUILDS = st.fixed_dictionaries({"context": CONTEXTS}, optional={"dockerfile": DOCKERFILES})
EXTRAS = {"port": PORTS, "env": st.dictionaries(ENV_KEYS, st.text(max_size=5), max_size=2)}
AGENT = st.one_of(
    st.fixed_dictionaries({"name": AGENT_NAMES, "image": IMAGES}, optional=EXTRAS),
    st.fixed_dictionaries({"name": AGENT_NAMES, "build": BUILDS}, optional=EXTRAS),
    # neither or both
    st.fixed_dictionaries({"name": AGENT_NAMES}, optional={"image": IMAGES, "build": BUILDS}),
)


def make_project(sandbox: Path) -> Path:
    project = sandbox / "project"
    if not project.exists():
        for dockerfile in ("agents/a/Dockerfile", "agents/a/Other.Dockerfile",
                           "agents/a/sub/Dockerfile", "outside/Dockerfile"):  # fmt: skip
            target = (
                project.parent / ("project/" if "outside" not in dockerfile else "") / dockerfile
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("FROM scratch\n")
        (project / "agents" / "file").write_text("not a folder\n")
    return project


def concrete(sandbox: Path, path: str) -> str:
    return {
        "@inside": str(sandbox / "project" / "agents" / "a"),
        "@outside": str(sandbox / "outside"),
        "@outside-dockerfile": str(sandbox / "outside" / "Dockerfile"),
    }.get(path, path)


def agent_problems(agents: list[dict[str, Any]], project: Path) -> set[str]:
    """The field paths a correct loader may name (empty: it must accept). Each field's own
    rules come first, then the list's (unique names), then the folders on disk."""
    problems: set[str] = set()
    for i, agent in enumerate(agents):
        name, port = agent["name"], agent.get("port", 8080)
        if not re.fullmatch(AGENT_NAME_PATTERN.strip("^$"), name):
            problems.add(f"agents.{i}.name")
        if ("image" in agent) == ("build" in agent):
            problems.add(f"agents.{i}")
        if "image" in agent and not re.fullmatch(IMAGE_PATTERN.strip("^$"), agent["image"]):
            problems.add(f"agents.{i}.image")
        if type(port) is not int or not 1 <= port <= 65535:
            problems.add(f"agents.{i}.port")
        if any(not re.fullmatch(ENV_VAR_PATTERN.strip("^$"), key) or key in RESERVED_AGENT_ENV
               for key in agent.get("env", {})):  # fmt: skip
            problems.add(f"agents.{i}.env")
        for key in ("context", "dockerfile"):
            if agent.get("build", {}).get(key) == "":
                problems.add(f"agents.{i}.build.{key}")
    if problems:
        return problems
    names = [agent["name"] for agent in agents]
    if "registry" in names or len(set(names)) < len(names):
        return {"agents"}
    for i, agent in enumerate(agents):
        if "build" in agent:
            build = agent["build"]
            found = build_problems(
                i, project, build["context"], build.get("dockerfile", "Dockerfile")
            )
            if found:
                return found
    return set()


def build_problems(i: int, project: Path, context: str, dockerfile: str) -> set[str]:
    try:
        folder = (project / Path(context).expanduser()).resolve()
        if not folder.is_dir():
            return {f"agents.{i}.build.context"}
    except (OSError, RuntimeError, ValueError):
        return {f"agents.{i}.build.context"}
    try:
        return (
            set() if (folder / dockerfile).resolve().is_file() else {f"agents.{i}.build.dockerfile"}
        )
    except (OSError, ValueError):
        return {f"agents.{i}.build.dockerfile"}


@settings(settings.get_profile("hostile"), max_examples=150)
@given(agents=st.lists(AGENT, min_size=1, max_size=3))
def test_any_agent_input_is_accepted_or_refused_naming_its_field(
    sandbox: Path, agents: list[dict[str, Any]]
) -> None:
    project = make_project(sandbox)
    for agent in agents:
        if "build" in agent:
            agent["build"] = {
                key: concrete(sandbox, value) for key, value in agent["build"].items()
            }
    accepted_or_named(sandbox, project, {"agents": agents}, agent_problems(agents, project))


def accepted_or_named(
    sandbox: Path, project: Path, document: dict[str, Any], problems: set[str]
) -> None:
    """`up --dry-run` of ``document``: exit 0 when ``problems`` is empty, else exit 2 with a
    first line naming the file and one of those field paths; never more than that."""
    import yaml

    config = project / "pallet-dev.yaml"
    config.write_text(yaml.safe_dump(document, allow_unicode=True))
    before = sorted(str(p) for p in sandbox.rglob("*") if "home" not in p.parts)
    code, _, err, seconds = run(["--config", str(config), "up", "--dry-run", "--json",
                                 "--prefer-docker"])  # fmt: skip
    assert_properties(sandbox, code, err, seconds)
    assert sorted(str(p) for p in sandbox.rglob("*") if "home" not in p.parts) == before
    if not problems:
        assert code == 0, err
        return
    assert code == 2, (problems, err)
    first = err.splitlines()[0]
    assert first.startswith("pallet-dev: error: ") and f"{config}:" in first, err
    assert any(f": {path}: " in first for path in problems), (problems, err)


# --- the mirrors' inputs: each list accepted, or refused with exit 2 naming its field path ---
UPSTREAMS = st.one_of(
    st.sampled_from(["docker.io", "ghcr.io", "registry.k8s.io", "up.test:5443", "localhost",
                     "Docker.io", "docker.io/library", "-x.io", "x..io", "x.io:", "", "a" * 254,
                     "registry-k8s.io", "registry.k8s-io", "ü.io"]),
    TEXT,
)  # fmt: skip
# remote_url: known valid or invalid forms only (the oracle below knows each)
GOOD_REMOTES = ["https://registry-1.docker.io", "http://10.0.0.1:5000", "https://up.test:5443/",
                "https://[::1]:5000"]  # fmt: skip
BAD_REMOTES = ["registry-1.docker.io", "ftp://x.io", "", "https://", "https://x.io/v2",
               "https://x.io:0", "https://x.io:99999", "https://a b.io", "https://ü.io",
               "https://[zz]:1", "https://x..io"]  # fmt: skip
VARIABLES = st.one_of(
    st.none(),
    st.sampled_from(["HUB_USER", "_X", "a1", "1A", "A-B", "", "a b", "x" * 5000]),
)
CA_FILE_FORMS = [
    None, "ca.pem", "./ca.pem", "@ca-absolute", "not-pem.txt", "missing.pem",
    "certs", "", "~nouser-pdt/ca.pem", "a\x00b", "x" * 300, "certs/" * 700,
]  # fmt: skip
CA_FILES = st.sampled_from(CA_FILE_FORMS)
MIRROR = st.fixed_dictionaries(
    {"upstream": UPSTREAMS, "remote_url": st.sampled_from(GOOD_REMOTES + BAD_REMOTES)},
    optional={"username_env": VARIABLES, "password_env": VARIABLES, "ca_file": CA_FILES},
)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def mirror_project(sandbox: Path) -> Path:
    project = sandbox / "mirror-project"
    if not project.exists():
        (project / "certs").mkdir(parents=True)
        (project / "ca.pem").write_text(PEM)
        (project / "not-pem.txt").write_text("hello\n")
    return project


def mirror_problems(mirrors: list[dict[str, Any]], project: Path) -> set[str]:
    """The field paths a correct loader may name (empty: it must accept): each entry's own
    rules first, then the list's (one cache per upstream and per cache name), then the CA
    files on disk (the first that fails)."""
    problems: set[str] = set()
    for i, mirror in enumerate(mirrors):
        upstream = mirror["upstream"]
        if len(upstream) > 253 or not re.fullmatch(UPSTREAM_PATTERN.strip("^$"), upstream):
            problems.add(f"mirrors.{i}.upstream")
        if mirror["remote_url"] not in GOOD_REMOTES:
            problems.add(f"mirrors.{i}.remote_url")
        for key in ("username_env", "password_env"):
            value = mirror.get(key)
            if value is not None and not re.fullmatch(ENV_VAR_PATTERN.strip("^$"), value):
                problems.add(f"mirrors.{i}.{key}")
        if (mirror.get("username_env") is None) != (mirror.get("password_env") is None):
            problems.add(f"mirrors.{i}")
        if mirror.get("ca_file") == "":
            problems.add(f"mirrors.{i}.ca_file")
    if problems:
        return problems
    upstreams = [mirror["upstream"] for mirror in mirrors]
    slugs = [mirror_slug(upstream) for upstream in upstreams]
    if len(set(upstreams)) < len(upstreams) or len(set(slugs)) < len(slugs):
        return {"mirrors"}
    for i, mirror in enumerate(mirrors):
        ca_file = mirror.get("ca_file")
        if ca_file is None:
            continue
        try:
            text = (project / Path(ca_file).expanduser()).resolve().read_text(errors="replace")
        except (OSError, RuntimeError, ValueError):
            return {f"mirrors.{i}.ca_file"}
        if "-----BEGIN CERTIFICATE-----" not in text:
            return {f"mirrors.{i}.ca_file"}
    return set()


@settings(settings.get_profile("hostile"), max_examples=120)
@given(mirrors=st.lists(MIRROR, max_size=3))
def test_any_mirror_input_is_accepted_or_refused_naming_its_field(
    sandbox: Path, mirrors: list[dict[str, Any]]
) -> None:
    check_mirrors(sandbox, mirrors)


@pytest.mark.parametrize("ca_file", [form for form in CA_FILE_FORMS if form is not None])
@pytest.mark.parametrize("remote_url", GOOD_REMOTES[:1] + BAD_REMOTES)
def test_each_ca_file_and_remote_url_alone(sandbox: Path, ca_file: str, remote_url: str) -> None:
    """Every listed form at least once (the generated lists above may miss one)."""
    mirror = {"upstream": "up.test", "remote_url": remote_url, "ca_file": ca_file}
    check_mirrors(sandbox, [mirror])


def check_mirrors(sandbox: Path, mirrors: list[dict[str, Any]]) -> None:
    project = mirror_project(sandbox)
    for mirror in mirrors:
        if mirror.get("ca_file") == "@ca-absolute":
            mirror["ca_file"] = str(project / "ca.pem")
    accepted_or_named(sandbox, project, {"mirrors": mirrors}, mirror_problems(mirrors, project))
