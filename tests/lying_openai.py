"""An OpenAI-compatible server on 127.0.0.1 that lies about its reply's token ids: llama.cpp's
/tokenize and /detokenize (one token per byte, id = byte + 10), /v1/models, and a streamed
/v1/completions whose chunks carry `logprobs.content[].id` set to what the test chooses (-3,
say) and whose text may hold a lone surrogate (valid JSON: "\\udc80")."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OFFSET = 10


class LyingOpenAI:
    def __init__(
        self,
        pieces: list[str],
        ids: list[int],
        n_ctx: int = 512,
        holds: dict[int, threading.Event] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """`holds`: the stream waits before piece N until the test sets its event (to act at a
        known point of a reply); `delay_s`: a pause after each piece, as a model's pace."""
        self.pieces, self.ids, self.n_ctx = pieces, ids, n_ctx
        self.holds, self.delay_s = holds or {}, delay_s
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LyingOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        lie = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> Any:
                size = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(size) or b"{}")

            def do_GET(self) -> None:
                if self.path.startswith("/v1/models"):
                    self._json({"data": [{"id": "liar", "max_model_len": lie.n_ctx}]})
                elif self.path.startswith("/props"):
                    self._json({"eos_token": "\x01"})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                body = self._body()
                if self.path == "/tokenize":
                    text = str(body.get("content", ""))
                    ids = [b + OFFSET for b in text.encode("utf-8", "surrogatepass")]
                    self._json({"tokens": ([1] if body.get("add_special") else []) + ids})
                elif self.path == "/detokenize":
                    raw = bytes(max(t - OFFSET, 0) for t in body.get("tokens", []) if t >= OFFSET)
                    self._json({"content": raw.decode("utf-8", "replace")})
                elif self.path == "/v1/completions":
                    self._stream()
                else:
                    self.send_error(404)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i, (piece, token) in enumerate(zip(lie.pieces, lie.ids, strict=True)):
                    if i in lie.holds:
                        lie.holds[i].wait(60)
                    chunk = {"choices": [{"text": piece, "logprobs": {"content": [{"id": token}]}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(lie.delay_s)
                end = {"choices": [{"text": "", "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        return Handler
