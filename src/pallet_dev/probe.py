"""HTTP probes of the registry and the Pallet agents, and the registry's small reads.

Every HTTP call of pallet-dev goes through :func:`http_get` (the kind API's through
agents.health.api_client): HTTPS with httpx, imported lazily (never on `--help` or a usage
error), plain HTTP with the standard library (:func:`_plain_http`: pallet-dev's own
endpoints, in commands with a start-up budget). Both with explicit timeouts and no proxy
from the environment: every endpoint probed here is local, and a corporate HTTP_PROXY
must not swallow localhost (kind #1304). `http_error` is the one place that turns httpx's
exceptions into pallet-dev's words and errors; `_plain_http` says the same words. Each
probe has its own timeout; probes run in parallel threads, so the total is bounded by the
slowest single timeout whatever the endpoints do.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pallet_dev.errors import OperationFailed

if TYPE_CHECKING:
    import httpx

API_VERSION_HEADER = "Docker-Distribution-Api-Version"
API_VERSION_VALUE = "registry/2.0"
# at most this much of a body is read (a probe needs none; the catalog a page)
MAX_BODY = 1 << 20


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


class HttpError(OperationFailed, OSError):
    """An HTTP call that got no answer: ``reason`` says why in a few words.

    In pallet-dev's error tree (exit 1, one sentence, a hint) and an OSError, so code
    that treats "no answer" like a refused socket keeps working.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"No answer from {url}: {reason}.",
            hint="Check `pallet-dev health`; `pallet-dev up` starts the environment.",
        )
        self.url = url
        self.reason = reason


def load_httpx() -> Any:
    """httpx, without its command-line entry point (``httpx._main``).

    httpx's package imports ``httpx._main`` for its own CLI, which pulls in click, rich
    and pygments: ~70 ms of its ~180 ms import here. pallet-dev never runs that CLI, so
    a stand-in module takes its place. Every ``import httpx`` in pallet-dev goes here.
    """
    import sys

    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        import types

        stand_in = types.ModuleType("httpx._main")
        stand_in.main = _no_httpx_cli  # type: ignore[attr-defined]
        sys.modules["httpx._main"] = stand_in
    import httpx

    return httpx


def _no_httpx_cli() -> None:
    raise SystemExit("httpx's command line is not part of pallet-dev")


_https_client: list[httpx.Client] = []
_https_lock = threading.Lock()


def _client() -> httpx.Client:
    """The one shared HTTPS client (httpx clients are thread-safe), verifying against the
    system's CAs; plain HTTP never comes here (:func:`_plain_http`)."""
    with _https_lock:
        if not _https_client:
            httpx = load_httpx()
            _https_client.append(httpx.Client(verify=True, trust_env=False, follow_redirects=False))
        return _https_client[0]


def http_error(exc: BaseException, url: str, timeout: float) -> HttpError:
    """httpx's exceptions (and a bad URL) as pallet-dev words: the one mapping."""
    httpx = load_httpx()

    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out after {timeout:g} s"
    elif isinstance(exc, httpx.ConnectError):
        cause = _root_cause(exc)
        if isinstance(cause, ConnectionRefusedError):
            reason = "connection refused"
        elif "Name or service not known" in str(exc) or "nodename nor servname" in str(exc):
            reason = f"cannot resolve host ({exc})"
        elif isinstance(cause, OSError) and type(cause).__name__ == "gaierror":
            reason = f"cannot resolve host ({cause.strerror})"
        else:
            reason = f"cannot connect ({exc})"
    elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        reason = "connection closed without a response"
    elif isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError)):
        reason = f"not a usable URL ({exc})"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return HttpError(url, reason)


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while (seen.__cause__ or seen.__context__) is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


def http_get(
    url: str,
    timeout: float,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """GET (or ``method``) ``url``; the timeout bounds connect and each read.

    Raises HttpError (an OSError) when no answer comes; any status is an answer.
    Plain ``http:`` goes through :func:`_plain_http`, ``https:`` through httpx.
    """
    sent = {"User-Agent": "pallet-dev", "Connection": "close", **(headers or {})}
    if url[:5].lower() == "http:":
        return _plain_http(url, timeout, method, sent)
    httpx = load_httpx()
    try:
        client = _client()
        with client.stream(method, url, headers=sent, timeout=httpx.Timeout(timeout)) as answer:
            body = b""
            if method != "HEAD":
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY:
                        body = body[:MAX_BODY]
                        break
            return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, body
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError, OSError) as exc:
        # OSError: e.g. the system's CA bundle cannot be loaded for an https client
        raise http_error(exc, url, timeout) from None


def _plain_http(
    url: str, timeout: float, method: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """:func:`http_get` for plain HTTP: one request on a socket of its own.

    What pallet-dev asks over plain HTTP is its own registry, caches and agents on this
    host, in commands with a start-up budget (`health` 0.25 s, `push`, `up`): httpx costs
    ~0.1 s to import, and even http.client ~0.015 s (it loads ssl and email). The request
    is HTTP/1.1 with ``Connection: close``; the body is read by Content-Length, by chunks,
    or up to the close. The rules are httpx's: no proxy from the environment, no
    redirects followed, ``timeout`` per connect and per read, at most MAX_BODY read, and
    the same reasons in an HttpError.
    """
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 80
        if not host:
            raise ValueError("no host")
    except ValueError as exc:
        raise HttpError(url, f"not a usable URL ({exc})") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii() or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in path):
        raise HttpError(url, "not a usable URL (a space, control or non-ASCII character)")
    named = f"[{host}]" if ":" in host else host
    sent = {"Host": f"{named}:{parts.port}" if parts.port else named}
    sent.update({"Accept-Encoding": "identity", **headers})
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in sent.items())]
    try:
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError("a header holds a line break")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # an ASCII host as bytes: a str would load the idna codec (~2 ms) to encode it
        # (getaddrinfo takes both; typeshed annotates create_connection with str only)
        address = cast(str, host.encode("ascii")) if host.isascii() else host
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(request)
            with sock.makefile("rb") as reader:
                return read_answer(reader, method)
    except TimeoutError:
        raise HttpError(url, f"timed out after {timeout:g} s") from None
    except ConnectionRefusedError:
        raise HttpError(url, "connection refused") from None
    except socket.gaierror as exc:
        raise HttpError(url, f"cannot resolve host ({exc.strerror})") from None
    except (NoAnswer, ConnectionResetError, BrokenPipeError):
        raise HttpError(url, "connection closed without a response") from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise HttpError(url, f"cannot connect ({exc})") from None


class NoAnswer(Exception):
    """The server closed the connection or sent something that is not an HTTP answer."""


_MAX_LINE = 65536  # http.client's limits: a status or header line, the number of headers
_MAX_HEADERS = 100


def read_answer(reader: Any, method: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names; repeated ones joined as httpx joins them) and body."""
    while True:
        line = reader.readline(_MAX_LINE + 1)
        version, _, rest = line.decode("latin-1").partition(" ")
        code = rest[:3]
        if len(line) > _MAX_LINE or not version.startswith("HTTP/") or not code.isdigit():
            raise NoAnswer()
        status = int(code)
        found: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = reader.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise NoAnswer()
            if line in (b"\r\n", b"\n", b""):
                break
            key, sep, value = line.decode("latin-1").partition(":")
            if sep:
                key, value = key.strip().lower(), value.strip()
                found[key] = f"{found[key]}, {value}" if key in found else value
        else:
            raise NoAnswer()  # more headers than any server of ours sends
        if not 100 <= status < 200 or status == 101:
            break  # an interim answer (100 Continue) is followed by the real one
    if method == "HEAD" or status in (101, 204, 304):
        return status, found, b""
    if "chunked" in found.get("transfer-encoding", "").lower():
        return status, found, _read_chunks(reader)
    length = found.get("content-length", "").strip()
    size = int(length) if length.isdigit() else MAX_BODY
    return status, found, reader.read(min(size, MAX_BODY))


def _read_chunks(reader: Any) -> bytes:
    body = b""
    while len(body) < MAX_BODY:
        size_text = reader.readline(_MAX_LINE + 1).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise NoAnswer() from None
        if size == 0:
            break
        chunk = reader.read(min(size, MAX_BODY - len(body)))
        body += chunk
        if len(chunk) < size:
            break  # cut at MAX_BODY, or the server closed early
        reader.readline(_MAX_LINE + 1)  # the line end after each chunk
    return body


def probe(target: ProbeTarget, timeout: float) -> ProbeResult:
    """One GET; never raises (a URL that cannot be probed is an unhealthy result)."""
    started = time.perf_counter()
    try:
        status, headers, _ = http_get(target.url, timeout)
    except HttpError as exc:
        latency = (time.perf_counter() - started) * 1000
        return ProbeResult(target.name, target.url, False, None, round(latency, 1), exc.reason)
    latency = round((time.perf_counter() - started) * 1000, 1)
    error, detail = judge(target, status, headers.get(API_VERSION_HEADER.lower()))
    return ProbeResult(target.name, target.url, error is None, status, latency, error, detail)


def judge(target: ProbeTarget, status: int, api: str | None) -> tuple[str | None, str | None]:
    """Why an answer is not healthy (None: it is), and a detail worth showing."""
    if target.registry:
        if status == 401:
            return None, "auth on"
        if status != 200:
            return f"expected 200, got {status}", None
        if api != API_VERSION_VALUE:
            return (
                f"missing header {API_VERSION_HEADER}: {API_VERSION_VALUE} (not a registry?)",
                None,
            )
        return None, None
    if target.expect_status == ANY_2XX:
        return (None if 200 <= status < 300 else f"expected 2xx, got {status}"), None
    if status != target.expect_status:
        return f"expected {target.expect_status}, got {status}", None
    return None, None


# slack past the per-probe timeout before a probe is abandoned (e.g. a hung DNS lookup,
# which socket timeouts do not bound)
ABANDON_AFTER = 0.1


def probe_all(targets: Sequence[ProbeTarget], timeout: float) -> list[ProbeResult]:
    """Probe every target in parallel; results in the order of ``targets``.

    Bounded whatever the endpoints do: each probe runs in a daemon thread, and one
    still running at ``timeout`` + a little is reported as timed out and left behind.
    """
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
        except HttpError:
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


MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def registry_authorization(
    challenge: str, scope: str, basic_auth: str | None, timeout: float
) -> dict[str, str] | str:
    """The header that answers a registry's 401 (its WWW-Authenticate ``challenge``) with
    the user's login (``basic_auth``: base64 of user:password, as `docker login` keeps it):
    Basic, or a Bearer token from the registry's token service for ``scope``. A sentence
    saying why not, when it cannot."""
    import json
    import re
    from urllib.parse import urlencode

    scheme, _, rest = challenge.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    basic = f"Basic {basic_auth}" if basic_auth else None
    if scheme.lower() == "bearer" and params.get("realm"):
        query = {"scope": scope, **({"service": params["service"]} if "service" in params else {})}
        got, _, body = http_get(
            f"{params['realm']}?{urlencode(query)}",
            timeout,
            headers={"Authorization": basic} if basic else {},
        )
        if got != 200:
            return f"its token service answered {got}"
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return "its token service did not answer JSON"
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        return {"Authorization": f"Bearer {token}"} if token else "its token service gave no token"
    if basic:
        return {"Authorization": basic}
    return "it asks for a login"


def manifest_digest(
    registry_url: str,
    repository: str,
    reference: str,
    *,
    login: str | None = None,
    timeout: float = 10.0,
) -> str | None:
    """The digest the registry serves for ``repository:reference`` (None when absent).

    ``login`` (base64 user:password) answers a registry that asks for one (a team's)."""
    url = f"{registry_url}/v2/{repository}/manifests/{reference}"
    sent = {"Accept": MANIFEST_TYPES}
    try:
        status, headers, _ = http_get(url, timeout, method="HEAD", headers=sent)
        if status == 401 and login:
            scope = f"repository:{repository}:pull"
            answer = registry_authorization(
                headers.get("www-authenticate", ""), scope, login, timeout
            )
            if isinstance(answer, str):
                raise OperationFailed(
                    f"The registry at {registry_url} refused to read {repository} with your "
                    f"Docker login ({answer}).",
                    hint=f"Run `docker login {registry_url.split('://', 1)[-1]}` again.",
                )
            status, headers, _ = http_get(url, timeout, method="HEAD", headers={**sent, **answer})
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise OperationFailed(
            f"The registry at {registry_url} did not answer a manifest check ({reason}).",
            hint="Check `pallet-dev health`; `pallet-dev up` starts the registry.",
        ) from None
    if status == 404:
        return None
    if status in (401, 403):
        raise OperationFailed(
            f"The registry at {registry_url} answered {status} for {repository}:{reference}: "
            "it wants a login with read access.",
            hint=f"Run `docker login {registry_url.split('://', 1)[-1]}` (pallet-dev reads its "
            "auths; credential helpers are not run).",
        )
    if status != 200:
        raise OperationFailed(
            f"The registry answered {status} for {repository}:{reference}.",
            hint="See `pallet-dev status`; the registry may be full or read-only.",
        )
    digest = headers.get("docker-content-digest")
    return digest or None
