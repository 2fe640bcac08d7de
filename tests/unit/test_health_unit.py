"""Probes and `pallet-dev health` against real HTTP servers on 127.0.0.1 ephemeral ports.

Registry-like, header-less, 401, 500, refused and silent (accepts, never answers)
endpoints; timings are asserted loosely ("well under the timeout", "below timeout
plus a generous margin"), never tightly.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.cli import run
from pallet_dev.commands.health import render_table
from pallet_dev.output import use_color
from pallet_dev.probe import ProbeResult, ProbeTarget, catalog, probe, probe_all, registry_target
from tests.support.http_servers import free_port, registry_server, silent_server

REPO_ROOT = Path(__file__).resolve().parents[2]
MARGIN = 1.5  # seconds of slack on any bound: CI machines are slow and shared
API_HEADER = {"Docker-Distribution-Api-Version": "registry/2.0"}


@functools.cache
def health_validator() -> Any:
    import jsonschema

    schema = json.loads((REPO_ROOT / "docs" / "health.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def validate(document: dict[str, Any]) -> None:
    health_validator().validate(document)


# --- probe(): one endpoint --------------------------------------------------------------


def test_registry_200_with_api_header_is_healthy() -> None:
    with registry_server(200, API_HEADER) as url:
        result = probe(registry_target(url), timeout=2.0)
    assert result.healthy and result.status_code == 200 and result.error is None
    assert result.url == f"{url}/v2/" and result.name == "registry"
    assert result.latency_ms >= 0


def test_registry_200_without_the_header_is_not_a_registry() -> None:
    with registry_server(200, {}) as url:
        result = probe(registry_target(url), timeout=2.0)
    assert not result.healthy and result.status_code == 200
    assert result.error is not None and "Docker-Distribution-Api-Version" in result.error


def test_registry_401_is_up_with_auth_on() -> None:
    headers = {**API_HEADER, "WWW-Authenticate": 'Basic realm="Registry Realm"'}
    with registry_server(401, headers) as url:
        result = probe(registry_target(url), timeout=2.0)
    assert result.healthy and result.status_code == 401
    assert result.error is None and result.detail == "auth on"


def test_registry_500_is_unhealthy() -> None:
    with registry_server(500, API_HEADER) as url:
        result = probe(registry_target(url), timeout=2.0)
    assert not result.healthy and result.status_code == 500
    assert result.error == "expected 200, got 500"


def test_refused_fails_at_once_not_after_the_timeout() -> None:
    timeout = 5.0
    started = time.monotonic()
    result = probe(registry_target(f"http://127.0.0.1:{free_port()}"), timeout=timeout)
    elapsed = time.monotonic() - started
    assert not result.healthy and result.status_code is None
    assert result.error == "connection refused"
    assert elapsed < timeout - 2.0  # "immediate": nowhere near the timeout


def test_accepting_but_silent_endpoint_is_bounded_by_the_timeout() -> None:
    timeout = 0.25
    with silent_server() as url:
        started = time.monotonic()
        result = probe(registry_target(url), timeout=timeout)
        elapsed = time.monotonic() - started
    assert not result.healthy and result.status_code is None
    assert result.error == "timed out after 0.25 s"
    assert elapsed < timeout + MARGIN


def test_services_compare_against_their_expected_status() -> None:
    with registry_server(204, {}) as url:
        ok = probe(ProbeTarget("agent", f"{url}/healthz", expect_status=204), timeout=2.0)
        wrong = probe(ProbeTarget("agent", f"{url}/healthz"), timeout=2.0)
    assert ok.healthy and ok.status_code == 204
    assert not wrong.healthy and wrong.error == "expected 200, got 204"


# --- probe_all(): in parallel -----------------------------------------------------------


def test_probes_run_in_parallel_so_silent_endpoints_cost_one_timeout() -> None:
    timeout = 0.3
    with silent_server() as silent, registry_server(200, API_HEADER) as good:
        targets = [ProbeTarget(f"silent{i}", silent) for i in range(6)]
        targets.insert(2, registry_target(good))
        started = time.monotonic()
        results = probe_all(targets, timeout)
        elapsed = time.monotonic() - started
    # one after another would take 6 x 0.3 = 1.8 s
    assert elapsed < timeout + 1.0
    assert [r.name for r in results] == [t.name for t in targets]  # order kept
    assert [r.healthy for r in results] == [False, False, True, False, False, False, False]


def test_catalog_lists_repositories() -> None:
    with registry_server(200, API_HEADER) as url:
        assert catalog(url) == ["a/b", "c"]
    assert catalog(f"http://127.0.0.1:{free_port()}", timeout=1.0) is None


# --- `pallet-dev health` end to end in-process --------------------------------------------


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PALLET_DEV_NAME", "pdt-health-unit")
    for var in ("PALLET_DEV_BACKEND", "PALLET_DEV_REGISTRY_BIND_ADDRESS", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def health(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = run(["health", *args])
    return code, capsys.readouterr().out


def registry_on(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", url.rsplit(":", 1)[1])


def write_services(folder: Path, services: list[tuple[str, str, int]]) -> None:
    lines = ["services:"]
    for name, url, status in services:
        lines += [f"  - name: {name}", f"    url: {url}", f"    expect_status: {status}"]
    (folder / "pallet-dev.yaml").write_text("\n".join(lines) + "\n")


def test_all_healthy_is_exit_0_and_one_valid_document(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with registry_server(200, API_HEADER) as registry, registry_server(204, {}) as agent:
        registry_on(monkeypatch, registry)
        write_services(isolated, [("ingest-agent", f"{agent}/healthz", 204)])
        code, out = health(capsys, "--json")
    document = json.loads(out)
    validate(document)
    assert code == 0 and document["status"] == "healthy"
    assert [s["name"] for s in document["services"]] == ["registry", "ingest-agent"]
    assert document["services"][1]["status_code"] == 204
    assert document["backend"] is None  # auto, and nothing brought up


def test_any_unhealthy_is_exit_1_and_the_document_says_why(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PALLET_DEV_BACKEND", "docker")
    with registry_server(200, API_HEADER) as registry, registry_server(500, {}) as agent:
        registry_on(monkeypatch, registry)
        write_services(
            isolated,
            [("broken", f"{agent}/", 200), ("gone", f"http://127.0.0.1:{free_port()}/", 200)],
        )
        code, out = health(capsys, "--json", "--timeout", "0.5")
    document = json.loads(out)
    validate(document)
    assert code == 1 and document["status"] == "unhealthy" and document["backend"] == "docker"
    by_name = {s["name"]: s for s in document["services"]}
    assert by_name["registry"]["healthy"] is True
    assert by_name["broken"]["error"] == "expected 200, got 500"
    assert by_name["gone"]["error"] == "connection refused"


def test_registry_down_and_silent_are_bounded(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    started = time.monotonic()
    code, out = health(capsys, "--json", "--timeout", "3")
    assert code == 1 and time.monotonic() - started < 3.0 - 1.0  # refused: not the timeout
    validate(json.loads(out))

    with silent_server() as silent:
        registry_on(monkeypatch, silent)
        started = time.monotonic()
        code, out = health(capsys, "--json", "--timeout", "0.3")
        elapsed = time.monotonic() - started
    document = json.loads(out)
    validate(document)
    assert code == 1 and elapsed < 0.3 + MARGIN
    assert document["services"][0]["error"] == "timed out after 0.3 s"


def test_the_schema_rejects_inconsistent_documents() -> None:
    import jsonschema

    good = {
        "schema_version": 1,
        "status": "healthy",
        "checked_at": "2026-01-01T00:00:00Z",
        "duration_ms": 3.2,
        "backend": "docker",
        "services": [
            {
                "name": "registry",
                "url": "http://127.0.0.1:5000/v2/",
                "healthy": True,
                "status_code": 200,
                "latency_ms": 1.0,
                "error": None,
            }
        ],
    }
    validate(good)
    registry = good["services"][0]  # type: ignore[index]
    bad_documents = [
        {**good, "services": [{**registry, "healthy": False, "error": "x"}]},  # status lies
        {**good, "services": [{**registry, "name": "agent"}]},  # registry must come first
        {**good, "services": []},
        {**good, "status": "unhealthy"},  # unhealthy needs an unhealthy service
        {**good, "services": [{**registry, "healthy": False, "error": None}]},
        {**good, "extra": 1},
        {**good, "backend": "podman"},
    ]
    for bad in bad_documents:
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


def test_human_table_has_no_colour_off_a_terminal(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with registry_server(401, API_HEADER) as registry:
        registry_on(monkeypatch, registry)
        code, out = health(capsys)
    assert code == 0 and "\033[" not in out
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["SERVICE", "STATE", "CODE", "MS"]
    assert row.split()[:3] == ["registry", "up", "401"] and row.endswith("auth on")


def test_colour_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    result = ProbeResult("registry", "http://x/v2/", False, None, 1.0, "connection refused")
    assert "\033[31m" in render_table([result], color=True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Terminal())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Terminal())  # type: ignore[arg-type]


def test_health_appends_a_json_log_line(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PALLET_DEV_REGISTRY_PORT", str(free_port()))
    health(capsys, "--json")
    log = isolated / "home" / "logs" / "pallet-dev.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    record = [r for r in records if r["event"] == "health"][-1]
    assert record["command"] == "health" and record["status"] == "unhealthy"
    assert record["unhealthy"] == ["registry"] and "time" in record


def test_a_probe_that_hangs_outside_socket_timeouts_is_abandoned_on_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hung name lookup is not bounded by socket timeouts; probe_all bounds it anyway."""
    import threading

    from pallet_dev import probe as probe_module

    release = threading.Event()
    real_get = probe_module.http_get

    def hanging_get(url: str, timeout: float) -> tuple[int, dict[str, str], bytes]:
        if "hangs.invalid" in url:
            release.wait(30)
        return real_get(url, timeout)

    monkeypatch.setattr(probe_module, "http_get", hanging_get)
    targets = [
        probe_module.ProbeTarget("stuck", "http://hangs.invalid/healthz"),
        probe_module.ProbeTarget("closed", "http://127.0.0.1:1/healthz"),
    ]
    started = time.monotonic()
    stuck, closed = probe_module.probe_all(targets, timeout=0.3)
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 5
    assert not stuck.healthy and stuck.error == "timed out after 0.3 s"
    assert not closed.healthy and closed.error == "connection refused"


def test_kind_agents_share_one_list_of_their_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    """One GET of the namespace's Deployments for every agent, beside each health path."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import pallet_dev.agents.health as agent_health
    from pallet_dev.agents.spec import AgentEndpoint, ApiAccess
    from pallet_dev.probe import load_httpx

    seen: list[str] = []
    deployments = {
        "items": [
            {"metadata": {"name": "planner"}, "spec": {"replicas": 2},
             "status": {"readyReplicas": 2}},
            {"metadata": {"name": "tracker"}, "spec": {"replicas": 2},
             "status": {"readyReplicas": 1}},
        ]
    }  # fmt: skip

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.path)
            status, body = 200, b"ok"
            if self.path.endswith("/deployments"):
                body = json.dumps(deployments).encode()
            elif "/packer:" in self.path:
                status = 503
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    httpx = load_httpx()
    # the API server's TLS is the e2e test's: here the same calls over plain HTTP
    monkeypatch.setattr(
        agent_health, "api_client", lambda api, timeout: httpx.Client(timeout=timeout)
    )
    endpoints = [
        AgentEndpoint(
            name, "kind", 2,
            proxy_url=f"{base}/api/v1/namespaces/pallet/services/{name}:8080/proxy/healthz",
            deployment_url=f"{base}/apis/apps/v1/namespaces/pallet/deployments/{name}",
        )
        for name in ("planner", "tracker", "packer")
    ]  # fmt: skip
    try:
        results = agent_health.check_agents(endpoints, ApiAccess(base, "", "", ""), timeout=5)
    finally:
        server.shutdown()
    by_name = {r.name: r for r in results}
    assert by_name["planner"].healthy and by_name["planner"].ready_replicas == 2
    assert by_name["tracker"].error == "1/2 replicas ready" and not by_name["tracker"].healthy
    assert by_name["packer"].error == "its Deployment does not exist"
    assert by_name["packer"].status_code == 503
    assert seen.count("/apis/apps/v1/namespaces/pallet/deployments") == 1
    assert not any(path.startswith("/apis/apps/v1/namespaces/pallet/deployments/") for path in seen)
