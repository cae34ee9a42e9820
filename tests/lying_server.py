"""A server on 127.0.0.1 that speaks enough of llama-server's and the OpenAI API to chat, and
lies where a test tells it to: an answer replaced, a stream that stalls, floods or never ends,
an SSH banner instead of HTTP. Its tokenizer is bytes (token = byte + 3; BOS 1, EOS 2)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OFFSET = 3
Answer = Callable[["Handler"], None]  # writes the whole answer itself


def byte_ids(text: str) -> list[int]:
    return [b + OFFSET for b in text.encode("utf-8")]


def props() -> dict[str, Any]:
    return {
        "default_generation_settings": {"n_ctx": 512},
        "model_path": "/models/lying.gguf",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "chat_template": "",
    }


def models() -> dict[str, Any]:
    return {"data": [{"id": "m", "meta": {"n_ctx": 512, "n_vocab": 259}}]}


def llama_events(text: str, timings: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    for ch in text:
        yield {"content": ch, "tokens": byte_ids(ch), "stop": False}
    yield {
        "content": "",
        "tokens": [],
        "stop": True,
        "stop_type": "eos",
        "timings": {"prompt_n": 5, **(timings or {})},
    }


def openai_events(text: str) -> Iterator[dict[str, Any]]:
    for ch in text:
        yield {"choices": [{"text": ch, "logprobs": {"content": [{"id": byte_ids(ch)[0]}]}}]}
    yield {"choices": [{"text": "", "finish_reason": "stop"}]}


class Handler(BaseHTTPRequestHandler):
    server: LyingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.body = json.loads(self.rfile.read(length) or b"{}")
        self._answer()

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        self.server.seen.append(path)
        lie = self.server.lies.get(path)
        if lie is not None:
            lie(self)
            return
        default = {
            "/props": lambda: self.json(props()),
            "/v1/models": lambda: self.json(models()),
            "/health": lambda: self.json({"status": "ok"}),
            "/tokenize": self._tokenize,
            "/detokenize": self._detokenize,
            "/completion": lambda: self.sse(llama_events(self.server.reply)),
            "/v1/completions": lambda: self.sse(openai_events(self.server.reply)),
        }.get(path)
        if default is None:
            self.json({"error": "not found"}, 404)
        else:
            default()

    def _tokenize(self) -> None:
        text = str(self.body.get("content", self.body.get("prompt", "")))
        special = {"<s>": [1], "</s>": [2]}.get(text)
        wants_special = self.body.get("parse_special") or self.body.get("add_special_tokens")
        self.json({"tokens": special if special and wants_special else byte_ids(text)})

    def _detokenize(self) -> None:
        spelled = {1: b"<s>", 2: b"</s>"}
        data = b"".join(spelled.get(t) or bytes([t - OFFSET]) for t in self.body["tokens"])
        text = data.decode("utf-8", "replace")
        self.json({"content": text, "prompt": text})

    def json(self, data: Any, status: int = 200) -> None:
        self.raw(json.dumps(data).encode(), status)

    def raw(self, payload: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def sse_headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def sse(self, events: Iterator[dict[str, Any]]) -> None:
        self.sse_headers()
        try:
            for event in events:
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except OSError:
            pass  # the client went: it may


class LyingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, lies: dict[str, Answer] | None = None, reply: str = "Hi there.") -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lies = lies or {}
        self.reply = reply
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> LyingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class Banner:
    """Not HTTP at all: greets every connection with an SSH banner and waits."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.sendall(b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1\r\n")

    def __enter__(self) -> Banner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


# -- lies -------------------------------------------------------------------------------------------


def answer(data: Any, status: int = 200) -> Answer:
    return lambda h: h.json(data, status)


def stall_after_headers(h: Handler) -> None:
    h.sse_headers()
    time.sleep(60)


def drip(h: Handler) -> None:
    """One byte every 5 s, never a whole event."""
    h.sse_headers()
    try:
        for _ in range(12):
            h.wfile.write(b"d")
            h.wfile.flush()
            time.sleep(5)
    except OSError:
        pass


def huge_line(h: Handler) -> None:
    """100 MB without a newline."""
    h.sse_headers()
    block = b"x" * (1 << 20)
    try:
        for _ in range(100):
            h.wfile.write(block)
    except OSError:
        pass


def flood(tokens_key: str) -> Answer:
    """A reply that ignores the limit: tokens for ever."""

    def run(h: Handler) -> None:
        def events() -> Iterator[dict[str, Any]]:
            while True:
                if tokens_key == "llama":
                    yield {"content": "a", "tokens": [ord("a") + OFFSET], "stop": False}
                else:
                    yield {"choices": [{"text": "a", "logprobs": {"content": [{"id": 100}]}}]}

        h.sse(events())

    return run


def redirect(h: Handler) -> None:
    h.raw(b"", 302, {"Location": "http://127.0.0.1:1/elsewhere"})


def main(argv: list[str]) -> None:
    """Stand in for llama-server (`--port N` among its flags): serve until killed."""
    port = int(argv[argv.index("--port") + 1])
    server = LyingServer()
    server.server_close()
    ThreadingHTTPServer.__init__(server, ("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])


def signal_in_stall(
    proc: subprocess.Popen[bytes], seen: list[str], path: str, times: int, sig: signal.Signals
) -> tuple[int, float, bytes]:
    """Wait until the server has seen `path` `times` times, then half a second into its
    stall send `sig`: (exit status, seconds it took to end, stderr)."""
    try:
        deadline = time.monotonic() + 30
        while seen.count(path) < times and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # in the stall
        proc.send_signal(sig)
        start = time.monotonic()
        rc = proc.wait(10)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    return rc, took, err
