"""An in-memory registry over real HTTP for `gc` tests: catalog, tags, manifests, blobs,
deletes by digest, with the headers distribution sends. Not a conformant registry: only
what pallet-dev's registry_api reads. ``auth`` makes it a team registry that wants a login
to read: "basic" (htpasswd-like), or "bearer" (a token service at /token, as Harbor has)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs|tags)/(?P<ref>[^?]+)")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    manifests: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> digest -> body
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> tag -> digest
    blobs: dict[str, bytes] = field(default_factory=dict)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    deletes_enabled: bool = True


class OciRegistry:
    """Start with :meth:`start`, fill with :meth:`add_image` / :meth:`add_index`."""

    def __init__(
        self, port: int = 0, *, auth: str | None = None, login: tuple[str, str] = ("", "")
    ) -> None:
        self.auth = auth
        self.basic = "Basic " + base64.b64encode(":".join(login).encode()).decode()
        self.token_scopes: list[str] = []  # what the token service was asked for
        self.store = Store()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OciRegistry:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _put(self, repo: str, tag: str | None, body: bytes) -> str:
        digest = digest_of(body)
        with self.lock:
            self.store.manifests.setdefault(repo, {})[digest] = body
            repo_tags = self.store.tags.setdefault(repo, {})
            if tag is not None:
                repo_tags[tag] = digest
        return digest

    def add_image(
        self, repo: str, tag: str | None, created: str | None, layer: bytes = b"layer"
    ) -> str:
        config: dict[str, Any] = {"architecture": "amd64", "os": "linux"}
        if created is not None:
            config["created"] = created
        config_bytes = json.dumps(config, sort_keys=True).encode()
        self.store.blobs[digest_of(config_bytes)] = config_bytes
        self.store.blobs[digest_of(layer)] = layer
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"digest": digest_of(config_bytes), "size": len(config_bytes)},
            "layers": [{"digest": digest_of(layer), "size": len(layer)}],
        }
        return self._put(repo, tag, json.dumps(manifest, sort_keys=True).encode())

    def add_index(self, repo: str, tag: str, children: list[str]) -> str:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"digest": child, "mediaType": OCI_MANIFEST} for child in children],
        }
        return self._put(repo, tag, json.dumps(index, sort_keys=True).encode())

    def tag_names(self, repo: str) -> list[str]:
        return sorted(self.store.tags.get(repo, {}))


def _handler(registry: OciRegistry) -> type[BaseHTTPRequestHandler]:
    store = registry.store

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(status)
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, data: Any) -> None:
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _refused(self) -> bool:
            """Whether a login was needed and missing (then the 401 is sent)."""
            sent = self.headers.get("Authorization", "")
            if registry.auth is None or sent in (registry.basic, "Bearer team-token"):
                return False
            challenge = (
                'Basic realm="team"'
                if registry.auth == "basic"
                else f'Bearer realm="{registry.url}/token",service="team-registry"'
            )
            self._send(401, b"{}", {"WWW-Authenticate": challenge})
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/token?"):
                if self.headers.get("Authorization") != registry.basic:
                    return self._send(401)
                registry.token_scopes.append(self.path)
                return self._json({"token": "team-token"})
            if self._refused():
                return None
            if self.path == "/v2/":
                return self._json({})
            if self.path.startswith("/v2/_catalog"):
                with registry.lock:
                    names = sorted(repo for repo, tags in store.tags.items() if tags)
                return self._json({"repositories": names})
            match = _PATH.match(self.path)
            if match is None:
                return self._send(404)
            name, kind, ref = match["name"], match["kind"], match["ref"]
            with registry.lock:
                if kind == "tags":
                    tags = sorted(store.tags.get(name, {}))
                    return self._json({"name": name, "tags": tags}) if tags else self._send(404)
                if kind == "blobs":
                    blob = store.blobs.get(ref)
                    return self._send(200, blob) if blob is not None else self._send(404)
                digest = store.tags.get(name, {}).get(ref, ref)
                body = store.manifests.get(name, {}).get(digest)
            if body is None:
                return self._send(404)
            media = json.loads(body)["mediaType"]
            return self._send(200, body, {"Docker-Content-Digest": digest, "Content-Type": media})

        do_HEAD = do_GET  # noqa: N815

        def do_POST(self) -> None:  # noqa: N802 - a blob upload starts (doctor's push check)
            if self._refused():
                return None
            return self._send(202, b"", {"Location": "/v2/uploads/session"})

        def do_DELETE(self) -> None:  # noqa: N802
            if self.path == "/v2/uploads/session":
                return self._send(204)
            match = _PATH.match(self.path)
            if match is None or match["kind"] != "manifests":
                return self._send(404)
            if not store.deletes_enabled:
                return self._send(405)
            name, digest = match["name"], match["ref"]
            with registry.lock:
                if store.manifests.get(name, {}).pop(digest, None) is None:
                    return self._send(404)
                tags = store.tags.get(name, {})
                for tag in [t for t, d in tags.items() if d == digest]:
                    del tags[tag]
                store.deletes.append((name, digest))
            return self._send(202)

        def log_message(self, *args: object) -> None:
            pass

    return Handler
