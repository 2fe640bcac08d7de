"""Proxies the tests put between a client and a real daemon, to cut it at a chosen moment.

``DockerSocketProxy``: a unix socket in front of the real Docker socket. Point DOCKER_HOST
at it and stop it to make the real docker CLI meet a daemon that went away, without
stopping the machine's dockerd (other tests share it).

``TcpProxy``: a port on 127.0.0.1 in front of another (a registry's), so a push can be
cut at a point set by the bytes that went through, whatever the machine's speed.

Either can hold a request: once the client has sent ``hold_after`` bytes past the first
``hold`` marker on a connection, nothing more of that connection goes upstream, and
:attr:`SocketProxy.holding` is set. The call is then surely in the middle; ``stop()``
cuts it.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

REAL_SOCKET = os.environ.get("PALLET_DEV_TEST_DOCKER_SOCKET", "/var/run/docker.sock")


class SocketProxy:
    def __init__(self, hold: bytes = b"", hold_after: int = 0) -> None:
        self.hold, self.hold_after = hold, hold_after
        self.holding = threading.Event()  # a request is held in the middle
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    # the two ends, by family
    def _listen(self) -> socket.socket:
        raise NotImplementedError

    def _upstream(self) -> socket.socket:
        raise NotImplementedError

    def _unlisten(self) -> None:
        """What is left of the listening end once it is closed."""

    def start(self) -> SocketProxy:
        server = self._listen()
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def stop(self) -> None:
        """The daemon "goes away": the listening end closes (new connections are refused)
        and every open connection is cut."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._unlisten()
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._connections.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._send, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def _send(self, client: socket.socket, upstream: socket.socket) -> None:
        """The client's bytes upstream; with a hold marker, only up to the hold point."""
        if not self.hold:
            _pipe(client, upstream)
            return
        tail = b""  # the end of what was sent, where a marker split by reads begins
        budget: int | None = None  # bytes of the coming reads still to send, once seen
        try:
            while data := client.recv(65536):
                if budget is None:
                    window = tail + data
                    at = window.find(self.hold)
                    if at < 0:
                        tail = window[len(window) - len(self.hold) + 1 :]
                        upstream.sendall(data)
                        continue
                    past = len(window) - at - len(self.hold)  # of this read, past the marker
                    budget = len(data) - past + self.hold_after
                if len(data) >= budget and not self.holding.is_set():
                    upstream.sendall(data[:budget])
                    self.holding.set()  # the rest waits for stop() to cut the connection
                    return
                budget -= len(data)
                upstream.sendall(data)
        except OSError:
            pass
        _shut(upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _shut(sink)


def _shut(sink: socket.socket) -> None:
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class DockerSocketProxy(SocketProxy):
    def __init__(
        self, path: Path, target: str = REAL_SOCKET, hold: bytes = b"", hold_after: int = 0
    ) -> None:
        super().__init__(hold, hold_after)
        self.path, self.target = path, target

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def _listen(self) -> socket.socket:
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        return server

    def _upstream(self) -> socket.socket:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.target)
        return upstream

    def _unlisten(self) -> None:
        self.path.unlink(missing_ok=True)


class TcpProxy(SocketProxy):
    """127.0.0.1:``port`` in front of 127.0.0.1:``target_port``."""

    def __init__(self, port: int, target_port: int, hold: bytes = b"", hold_after: int = 0):
        super().__init__(hold, hold_after)
        self.port, self.target_port = port, target_port

    def _listen(self) -> socket.socket:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        return server

    def _upstream(self) -> socket.socket:
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        upstream.settimeout(None)  # a kept-alive connection may idle
        return upstream
