"""A Hub-compatible HTTP server on 127.0.0.1 for tests: the real huggingface_hub client talks
to it through HF_ENDPOINT. It serves the endpoints a download uses -- the tree listing with LFS
sha256, HEAD/GET on resolve with X-Repo-Commit / X-Linked-Etag / X-Linked-Size and Range --
plus faults: a connection dropped mid-file, a file whose bytes do not match its sha256, gated
and missing repos."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    wrong_sha: set[str] = field(default_factory=set)  # served bytes differ from the listed hash
    drop_after: dict[str, int] = field(default_factory=dict)  # first GET stops after N bytes
    listed_size: dict[str, int] = field(default_factory=dict)  # sizes claimed in the listing
    slow: bool = False  # send in small chunks with pauses (to interrupt a download)
    ignore_range: bool = False  # answer every GET with the whole file (200), Range or not
    drop_every: int | None = None  # every GET stops after this many bytes

    def sha256(self, path: str) -> str:
        data = self.files[path]
        if path in self.wrong_sha:
            data = data + b"x"  # the Hub's hash of other bytes
        return hashlib.sha256(data).hexdigest()


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str]] = []  # method, path, range
        self.lock = threading.Lock()
        self.fail_next = 0  # the next N requests answer 500


def _handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _error(self, code: int, error_code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(code)
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _repo(self, repo_id: str) -> Repo | None:
            repo = state.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo.gated and "authorization" not in {k.lower() for k in self.headers}:
                self._error(401, "GatedRepo", "Access to this model is restricted")
                return None
            return repo

        def do_GET(self) -> None:
            self._route()

        def do_HEAD(self) -> None:
            self._route()

        def _route(self) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            with state.lock:
                state.requests.append((self.command, path, self.headers.get("Range", "")))
                failing = state.fail_next > 0
                state.fail_next -= 1 if failing else 0
            if failing:
                self._error(500, "ServerError", "Internal Server Error")
                return
            tree = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", path)
            resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if tree:
                self._tree(tree.group(1))
            elif resolve:
                self._resolve(resolve.group(1), resolve.group(3))
            else:
                self._error(404, "EntryNotFound", f"no route {path}")

        def _tree(self, repo_id: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            entries = [
                {
                    "type": "file",
                    "oid": hashlib.sha1(data).hexdigest(),
                    "size": repo.listed_size.get(name, len(data)),
                    "path": name,
                    "lfs": {
                        "oid": repo.sha256(name),
                        "size": repo.listed_size.get(name, len(data)),
                        "pointerSize": 134,
                    },
                }
                for name, data in sorted(repo.files.items())
            ]
            body = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _resolve(self, repo_id: str, name: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            if name not in repo.files:
                self._error(404, "EntryNotFound", "Entry not found")
                return
            data = repo.files[name]
            start = 0
            rng = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if repo.ignore_range:
                rng = None
            if rng:
                start = int(rng.group(1))
            body = data[start:]
            self.send_response(206 if rng else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Etag", f'"{repo.sha256(name)}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{repo.sha256(name)}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if self.command == "HEAD":
                return
            cut = repo.drop_after.pop(name, None) if self.command == "GET" else None
            cut = repo.drop_every if cut is None else cut
            if cut is not None and cut < len(body):
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the peer closes mid-body
                return
            if repo.slow:
                for i in range(0, len(body), 1 << 16):
                    self.wfile.write(body[i : i + (1 << 16)])
                    time.sleep(0.05)
                return
            self.wfile.write(body)

    return Handler


class HubServer:
    def __init__(self, port: int = 0) -> None:
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
