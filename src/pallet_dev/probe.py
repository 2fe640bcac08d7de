"""HTTP probes of the registry and the Pallet agents.

Built on the standard library's http.client rather than httpx: `health` has a
200 ms budget and importing httpx alone costs ~80 ms here. Each probe has its
own timeout; probes run in parallel threads, so the total is bounded by the
slowest single timeout whatever the endpoints do.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

API_VERSION_HEADER = "Docker-Distribution-Api-Version"
API_VERSION_VALUE = "registry/2.0"


@dataclass(frozen=True)
class ProbeResult:
    name: str
    url: str
    healthy: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    detail: str | None = None  # e.g. "auth on" for a 401 registry


# ProbeTarget.expect_status for "any 2xx" (agents' health paths)
ANY_2XX = 0


@dataclass(frozen=True)
class ProbeTarget:
    name: str
    url: str
    expect_status: int = 200
    registry: bool = False  # apply the /v2/ header rules


def http_get(
    url: str,
    timeout: float,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """GET (or ``method``) ``url``; the timeout bounds connect and each read."""
    parts = urlsplit(url)
    conn_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    host = parts.hostname or "localhost"
    conn = conn_class(host, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        sent = {"User-Agent": "pallet-dev", "Connection": "close", **(headers or {})}
        conn.request(method, path, headers=sent)
        response = conn.getresponse()
        body = b"" if method == "HEAD" else response.read(1 << 20)
        headers = {key.lower(): value for key, value in response.getheaders()}
        return response.status, headers, body
    finally:
        conn.close()


def _error_text(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)):
        return "connection closed without a response"
    return f"{type(exc).__name__}: {exc}"


def probe(target: ProbeTarget, timeout: float) -> ProbeResult:
    """One GET; never raises (a URL that cannot be probed is an unhealthy result)."""
    started = time.perf_counter()
    try:
        status, headers, _ = http_get(target.url, timeout)
    except (OSError, http.client.HTTPException, ValueError, UnicodeError) as exc:
        latency = (time.perf_counter() - started) * 1000
        return ProbeResult(
            target.name, target.url, False, None, round(latency, 1), _error_text(exc, timeout)
        )
    latency = round((time.perf_counter() - started) * 1000, 1)
    if target.registry:
        api = headers.get(API_VERSION_HEADER.lower())
        if status == 401:
            return ProbeResult(target.name, target.url, True, status, latency, None, "auth on")
        if status != 200:
            return ProbeResult(
                target.name, target.url, False, status, latency, f"expected 200, got {status}"
            )
        if api != API_VERSION_VALUE:
            return ProbeResult(
                target.name,
                target.url,
                False,
                status,
                latency,
                f"missing header {API_VERSION_HEADER}: {API_VERSION_VALUE} (not a registry?)",
            )
        return ProbeResult(target.name, target.url, True, status, latency, None)
    if target.expect_status == ANY_2XX:
        if 200 <= status < 300:
            return ProbeResult(target.name, target.url, True, status, latency, None)
        return ProbeResult(
            target.name, target.url, False, status, latency, f"expected 2xx, got {status}"
        )
    if status != target.expect_status:
        return ProbeResult(
            target.name,
            target.url,
            False,
            status,
            latency,
            f"expected {target.expect_status}, got {status}",
        )
    return ProbeResult(target.name, target.url, True, status, latency, None)


# slack past the per-probe timeout before a probe is abandoned (e.g. a hung DNS lookup,
# which socket timeouts do not bound)
ABANDON_AFTER = 0.1


def probe_all(targets: Sequence[ProbeTarget], timeout: float) -> list[ProbeResult]:
    """Probe every target in parallel; results in the order of ``targets``.

    Bounded whatever the endpoints do: each probe runs in a daemon thread, and one
    still running at ``timeout`` + a little is reported as timed out and left behind.
    """
    import threading

    results: list[ProbeResult | None] = [None] * len(targets)

    def work(index: int, target: ProbeTarget) -> None:
        try:
            results[index] = probe(target, timeout)
        except Exception as exc:  # never a traceback from a probe thread
            results[index] = ProbeResult(
                target.name, target.url, False, None, 0.0, f"{type(exc).__name__}: {exc}"
            )

    threads = [
        threading.Thread(target=work, args=(index, target), daemon=True)
        for index, target in enumerate(targets)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + ABANDON_AFTER
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return [
        (
            result
            if result is not None
            else ProbeResult(
                target.name, target.url, False, None, elapsed, f"timed out after {timeout:g} s"
            )
        )
        for result, target in zip(results, targets)
    ]


def registry_target(base_url: str) -> ProbeTarget:
    return ProbeTarget("registry", base_url.rstrip("/") + "/v2/", 200, registry=True)


def wait_for_registry(base_url: str, deadline: float) -> ProbeResult:
    """Poll ``/v2/`` until it is healthy or ``deadline`` (monotonic) passes.

    A fresh registry answers within a few hundred milliseconds: poll every 20 ms for
    the first 2 s (a refused local connect costs microseconds), then every 200 ms.
    """
    target = registry_target(base_url)
    started = time.monotonic()
    while True:
        remaining = deadline - time.monotonic()
        result = probe(target, timeout=max(0.2, min(2.0, remaining)))
        interval = 0.02 if time.monotonic() - started < 2.0 else 0.2
        if result.healthy or time.monotonic() + interval >= deadline:
            return result
        time.sleep(interval)


# distribution answers 400 (PAGINATION_NUMBER_INVALID) above its catalog.maxentries,
# 1000 by default: ask for pages of that size and follow the Link header
CATALOG_PAGE_SIZE = 1000
CATALOG_MAX_PAGES = 100


def catalog(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """Repository names from `/v2/_catalog`, every page (None when the registry does not answer)."""
    base = base_url.rstrip("/")
    path = f"/v2/_catalog?n={CATALOG_PAGE_SIZE}"
    names: list[str] = []
    for _ in range(CATALOG_MAX_PAGES):
        try:
            status, headers, body = http_get(base + path, timeout)
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return None
        try:
            repositories = json.loads(body).get("repositories") or []
        except (ValueError, AttributeError):
            return None
        names += [str(name) for name in repositories]
        # Link: </v2/_catalog?last=pallet%2Fone&n=1000>; rel="next"
        link = headers.get("link", "")
        if 'rel="next"' not in link or "<" not in link:
            break
        path = link.split("<", 1)[1].split(">", 1)[0]
    return names
