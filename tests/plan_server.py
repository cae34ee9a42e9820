"""A loopback web server for reWOO plans: real HTML pages, a SearXNG-shaped JSON search API,
and pages that misbehave (redirect loops, a binary type, a page too big, one that hangs)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LAUREATE_PAGE = """<!doctype html>
<html><head><title>Louise Glück</title><style>body { color: red }</style>
<script>var tracking = "should not be read";</script></head>
<body><nav><a href="/">Home</a></nav>
<h1>Louise Glück</h1>
<p>Louise Glück won the <b>Nobel Prize in Literature</b> in 2020
&quot;for her unmistakable poetic voice&quot;.</p>
<p>Her most famous work is <i>The Wild Iris</i> (1992), which won the Pulitzer Prize.</p>
</body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes, kind: str = "text/html; charset=utf-8", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may stop reading (a page past its limit)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.seen.append(self.path)
        base = f"http://127.0.0.1:{self.server.server_port}"
        if parts.path == "/search":
            query = parse_qs(parts.query)
            assert query.get("format") == ["json"]
            results = [
                {
                    "title": "Louise Glück – Facts",
                    "url": f"{base}/laureate",
                    "content": f"Found for {query['q'][0]}",
                },
                {"title": "More about her", "url": f"{base}/laureate?again", "content": "Poet."},
            ]
            self._send(
                json.dumps({"query": query["q"][0], "results": results}).encode(),
                "application/json",
            )
        elif parts.path == "/laureate":
            self._send(LAUREATE_PAGE.encode())
        elif parts.path.startswith("/hop/"):
            n = int(parts.path.split("/")[2])
            self.send_response(302)
            self.send_header("Location", f"/hop/{n + 1}" if n < 20 else "/laureate")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/image":
            self._send(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
        elif parts.path == "/big":
            self._send(b"<p>" + b"word " * (1 << 20) + b"</p>")  # 5 MiB
        elif parts.path == "/hang":
            time.sleep(30)
        else:
            self._send(b"<h1>not here</h1>", status=404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[str]


@contextmanager
def plan_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
