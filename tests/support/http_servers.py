"""Small real HTTP servers on 127.0.0.1 for probe tests: registry-like, wrong, silent, closing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _handler(status: int, headers: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = b"{}"
            if self.path.startswith("/v2/_catalog"):
                body = b'{"repositories":["a/b","c"]}'
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class FakeRegistryServer:
    """A real HTTP server answering like a registry's /v2/ (or however told)."""

    def __init__(
        self, port: int = 0, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        if headers is None:
            headers = {"Docker-Distribution-Api-Version": "registry/2.0"}
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(status, headers))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRegistryServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def registry_server(status: int = 200, headers: dict[str, str] | None = None) -> Iterator[str]:
    server = FakeRegistryServer(0, status, headers).start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def _accepting_server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that gives every connection it accepts to ``handle``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            handle(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=1)
        sock.close()


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    accepted: list[socket.socket] = []
    try:
        with _accepting_server(accepted.append) as url:
            yield url
    finally:
        for conn in accepted:
            conn.close()


@contextmanager
def closing_server() -> Iterator[str]:
    """Accepts a connection, reads the request and closes it: no HTTP answer at all."""

    def close(conn: socket.socket) -> None:
        conn.recv(1024)
        conn.close()

    with _accepting_server(close) as url:
        yield url
