"""Reads from the Docker Engine API's local socket (tools/docker_engine.py): which socket
the docker CLI would use, the answers of a real HTTP server on a unix socket, and the
fall back to the CLI on any trouble."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator, Sequence
from hashlib import sha256
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pallet_dev.eventlog import EventLog
from pallet_dev.runner import CommandResult, Runner
from pallet_dev.tools.docker import Docker
from pallet_dev.tools.docker_engine import DEFAULT_SOCKET, local_socket

LABELS = {"dev.pallet.environment": "pdt"}


def inspect_doc(name: str, port: int = 32001) -> dict[str, Any]:
    return {
        "Id": f"{name}-id",
        "Name": f"/{name}",
        "Image": "sha256:abc",
        "State": {"Status": "running", "StartedAt": "2026-12-07T00:00:00Z"},
        "Config": {"Image": "localhost:5000/pdt/a@sha256:1", "Labels": LABELS, "Env": ["A=1"]},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
        "NetworkSettings": {
            "Networks": {"pdt": {}},
            "Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
        },
    }


# --- which socket ------------------------------------------------------------------------
def test_without_host_or_context_the_default_socket(tmp_path: Path) -> None:
    assert local_socket({"DOCKER_CONFIG": str(tmp_path)}) == DEFAULT_SOCKET


def test_docker_host_decides_and_only_a_unix_socket_is_used(tmp_path: Path) -> None:
    base = {"DOCKER_CONFIG": str(tmp_path)}
    assert local_socket({**base, "DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == (
        "/run/user/1000/docker.sock"
    )
    assert local_socket({**base, "DOCKER_HOST": "tcp://10.0.0.5:2376"}) is None
    assert local_socket({**base, "DOCKER_HOST": "ssh://me@build-box"}) is None


def test_the_switch_turns_the_socket_off(tmp_path: Path) -> None:
    for off in ("0", "false", "off", "No"):
        assert local_socket({"DOCKER_CONFIG": str(tmp_path), "PALLET_DEV_DOCKER_API": off}) is None


def write_context(config_dir: Path, name: str, host: str) -> None:
    meta = config_dir / "contexts" / "meta" / sha256(name.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def test_the_current_context_is_read_as_the_cli_reads_it(tmp_path: Path) -> None:
    """Docker Desktop and colima: config.json names the context, its meta.json the host."""
    write_context(tmp_path, "colima", "unix:///Users/me/.colima/default/docker.sock")
    write_context(tmp_path, "remote", "tcp://10.0.0.5:2376")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "colima"}))
    environ = {"DOCKER_CONFIG": str(tmp_path)}
    assert local_socket(environ) == "/Users/me/.colima/default/docker.sock"
    # DOCKER_CONTEXT wins over config.json, and "default" is the default socket
    assert local_socket({**environ, "DOCKER_CONTEXT": "remote"}) is None
    assert local_socket({**environ, "DOCKER_CONTEXT": "default"}) == DEFAULT_SOCKET
    # DOCKER_HOST wins over both
    assert local_socket({**environ, "DOCKER_HOST": "unix:///x.sock"}) == "/x.sock"


def test_a_context_that_cannot_be_read_leaves_it_to_the_cli(tmp_path: Path) -> None:
    environ = {"DOCKER_CONFIG": str(tmp_path)}
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "gone"}))
    assert local_socket(environ) is None  # no meta.json for it
    (tmp_path / "config.json").write_text("{not json")
    assert local_socket(environ) is None
    (tmp_path / "config.json").write_text("[]")
    assert local_socket(environ) is None


# --- a real server on a unix socket ------------------------------------------------------
class Engine:
    """An Engine API stand-in on a unix socket: the requests it saw, the answers it gives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[str] = []
        self.containers = {"pdt-a": inspect_doc("pdt-a"), "pdt-b": inspect_doc("pdt-b", 32002)}
        self.status = 200
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                engine.requests.append(self.path)
                parts = urlsplit(self.path)
                status, body = engine.answer(parts.path, parse_qs(parts.query))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if self.status != 200:
            return self.status, {"message": "broken"}
        if path == "/containers/json":
            wanted = json.loads(query["filters"][0])["label"]
            assert query["all"] == ["1"]
            found = [
                doc for doc in self.containers.values() if "dev.pallet.environment=pdt" in wanted
            ]
            # a legacy link's alias is a name with a further "/": not a container of its own
            return 200, [{"Names": [doc["Name"], "/other/alias"]} for doc in found]
        name = path.split("/")[2]
        if name in self.containers:
            return 200, self.containers[name]
        return 404, {"message": f"No such container: {name}"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    # a short folder: a unix socket path is limited to about 100 bytes
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pde-", dir="/tmp"))
    served = Engine(folder / "docker.sock")
    monkeypatch.delenv("PALLET_DEV_DOCKER_API")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{served.path}")
    yield served
    served.close()
    served.path.unlink(missing_ok=True)
    folder.rmdir()


class CliRunner(Runner):
    """The real runner's socket reads; the docker CLI answered from canned output."""

    def __init__(self, log: EventLog, cli_output: str = "[]") -> None:
        super().__init__(log, engine_api=True)
        self.calls: list[list[str]] = []
        self.cli_output = cli_output

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(tuple(argv), 0, self.cli_output, "", 0.01)


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_inspect_and_list_come_from_the_socket_without_the_cli(
    engine: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "log.jsonl"
    runner = CliRunner(EventLog(log, command="up"))
    docker = Docker(runner)
    found = docker.inspect_containers(["pdt-a", "pdt-missing", "pdt-b"])
    assert sorted(found) == ["pdt-a", "pdt-b"]
    assert found["pdt-b"].host_port(8080) == 32002
    assert found["pdt-a"].networks == ("pdt",) and found["pdt-a"].running
    assert docker.inspect_container("pdt-a") == found["pdt-a"]
    assert docker.inspect_container("pdt-missing") is None
    assert docker.containers_with_labels(LABELS, key="dev.pallet.agent") == ["pdt-a", "pdt-b"]
    assert runner.calls == []
    listed = [r for r in engine.requests if r.startswith("/containers/json")]
    query = parse_qs(urlsplit(listed[0]).query)
    assert json.loads(query["filters"][0]) == {
        "label": ["dev.pallet.environment=pdt", "dev.pallet.agent"]
    }
    logged = [e for e in events(log) if e["event"] == "api"]
    assert logged[0]["request"] == "GET /containers/pdt-a/json" and logged[0]["status"] == 200
    assert {e["status"] for e in logged} == {200, 404}


def test_an_error_answer_sends_the_read_to_the_cli(engine: Engine, tmp_path: Path) -> None:
    engine.status = 500
    cli = json.dumps([inspect_doc("pdt-a")])
    runner = CliRunner(EventLog(tmp_path / "log.jsonl"), cli_output=cli)
    found = Docker(runner).inspect_containers(["pdt-a"])
    assert list(found) == ["pdt-a"]
    assert runner.calls == [["docker", "container", "inspect", "pdt-a"]]


def test_a_socket_that_is_not_there_is_tried_once_then_the_cli_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PALLET_DEV_DOCKER_API")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    log = tmp_path / "log.jsonl"
    runner = CliRunner(EventLog(log), cli_output='"pdt-a"\n')
    docker = Docker(runner)
    assert docker.containers_with_labels(LABELS) == ["pdt-a"]
    assert docker.containers_with_labels(LABELS) == ["pdt-a"]
    assert len(runner.calls) == 2 and runner.calls[0][:3] == ["docker", "container", "ls"]
    failed = [e for e in events(log) if e["event"] == "api-failed"]
    assert len(failed) == 1 and "absent.sock" in failed[0]["error"]


def test_a_runner_not_asked_to_use_the_socket_never_does(engine: Engine, tmp_path: Path) -> None:
    """Every runner but the application's keeps to the CLI (the test fakes among them)."""
    assert Runner(EventLog(tmp_path / "log.jsonl")).engine_get("/_ping", step="ping") is None
    assert engine.requests == []


def test_an_answer_that_is_not_json_sends_the_read_to_the_cli(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Engine, "answer", lambda self, path, query: (200, None))
    runner = CliRunner(EventLog(tmp_path / "log.jsonl"), cli_output='"pdt-a"\n')
    assert Docker(runner).containers_with_labels(LABELS) == ["pdt-a"]
    assert len(runner.calls) == 1
