"""Plain HTTP in `http_get` (a request on a socket of its own), against real servers on
127.0.0.1: what it sends, what it reads, and the same reasons as the httpx path."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pallet_dev.probe import MAX_BODY, HttpError, http_get
from tests.support.http_servers import closing_server, free_port, silent_server

SEEN: list[dict[str, str]] = []


class Handler(BaseHTTPRequestHandler):
    def _answer(self, body: bytes) -> None:
        SEEN.append({"method": self.command, "path": self.path, **dict(self.headers.items())})
        self.send_response(200)
        self.send_header("Link", '</v2/_catalog?last=a&n=1>; rel="next"')
        self.send_header("X-Twice", "one")
        self.send_header("X-Twice", "two")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/chunked"):
            self._chunked(self.path.endswith("big"))
            return
        self._answer(b"x" * (MAX_BODY + 10) if self.path == "/big" else b"hello")

    def _chunked(self, big: bool) -> None:
        # as Go's net/http answers HTTP/1.1 without a known length: chunks
        self.protocol_version = "HTTP/1.1"
        self.send_response(100)  # an interim answer first, to be skipped
        self.end_headers()
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        parts = [b"y" * 600_000] * 2 if big else [b'{"repositories":', b'["a"]}']
        for part in parts:
            self.wfile.write(b"%x; ext=1\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self) -> None:
        self._answer(b"hello")

    def do_DELETE(self) -> None:
        self._answer(b"")

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_get_sends_our_headers_and_reads_status_headers_and_body() -> None:
    SEEN.clear()
    with server() as url:
        status, headers, body = http_get(f"{url}/v2/a/tags/list?n=5", 2.0, headers={"A": "b"})
    assert (status, body) == (200, b"hello")
    assert headers["link"] == '</v2/_catalog?last=a&n=1>; rel="next"'
    assert headers["x-twice"] == "one, two"  # joined, as httpx gives repeated headers
    sent = SEEN[0]
    assert sent["path"] == "/v2/a/tags/list?n=5"
    assert sent["User-Agent"] == "pallet-dev" and sent["A"] == "b"


def test_head_and_delete_read_no_body_and_a_big_body_is_cut() -> None:
    SEEN.clear()
    with server() as url:
        assert http_get(f"{url}/x", 2.0, method="HEAD")[::2] == (200, b"")
        assert http_get(f"{url}/x", 2.0, method="DELETE")[0] == 200
        assert len(http_get(f"{url}/big", 2.0)[2]) == MAX_BODY
    assert [s["method"] for s in SEEN] == ["HEAD", "DELETE", "GET"]


def test_a_chunked_answer_after_an_interim_one_is_read_whole_or_cut() -> None:
    with server() as url:
        status, headers, body = http_get(f"{url}/chunked", 2.0)
        assert (status, body) == (200, b'{"repositories":["a"]}')
        assert headers["transfer-encoding"] == "chunked"
        assert http_get(f"{url}/chunked-big", 2.0)[2] == b"y" * MAX_BODY


def test_a_server_that_never_answers_times_out() -> None:
    with silent_server() as url:
        with pytest.raises(HttpError) as caught:
            http_get(f"{url}/v2/", 0.3)
    assert caught.value.reason == "timed out after 0.3 s"


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/a b", {}, "not a usable URL (a space, control or non-ASCII character)"),
        ("/caf\u00e9", {}, "not a usable URL (a space, control or non-ASCII character)"),
        ("/x", {"A": "b\r\nEvil: 1"}, "cannot connect (a header holds a line break)"),
    ],
)
def test_what_cannot_be_sent_is_refused_before_connecting(
    path: str, headers: dict[str, str], reason: str
) -> None:
    SEEN.clear()
    with server() as url:
        with pytest.raises(HttpError) as caught:
            http_get(f"{url}{path}", 2.0, headers=headers)
    assert caught.value.reason == reason
    assert SEEN == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{free}/v2/", "connection refused"),
        ("http://127.0.0.1:notaport/v2/", "not a usable URL"),
        ("http:///v2/", "not a usable URL (no host)"),
        ("http://pallet-dev-no-such-host.invalid:5000/v2/", "cannot resolve host"),
    ],
)
def test_no_answer_is_an_http_error_with_httpx_s_reasons(url: str, reason: str) -> None:
    with pytest.raises(HttpError) as caught:
        http_get(url.format(free=free_port()), 2.0)
    assert caught.value.reason.startswith(reason)


def test_a_connection_closed_without_an_answer_is_named() -> None:
    with closing_server() as url:
        with pytest.raises(HttpError) as caught:
            http_get(f"{url}/v2/", 2.0)
    assert caught.value.reason == "connection closed without a response"


def test_plain_http_imports_neither_httpx_nor_http_client() -> None:
    code = (
        "import sys\n"
        "from pallet_dev.probe import http_get, HttpError\n"
        "try:\n"
        f"    http_get('http://127.0.0.1:{free_port()}/v2/', 1.0)\n"
        "except HttpError:\n"
        "    pass\n"
        "print(sorted({'httpx', 'http.client', 'ssl', 'encodings.idna'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
