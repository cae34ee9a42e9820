"""What the server engines share: an httpx client whose every failure is one line, answers
read with a size cap, and a streamed reply read in a worker thread.

No wait on a server is unbounded: a JSON answer has `timeout_s`; a streamed reply has
`FIRST_BYTES` times that for the prompt read and `timeout_s` between its lines; and the caller waits
for each line in steps of `STEP_S`, so a stop request (Ctrl-C, SIGTERM: the CancelToken arms
the engine's `request_stop`) ends the wait within a second even when the server is silent.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airochat.domain.unicode_text import valid_json
from airochat.errors import AirochatError, UsageError

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT_S = 60.0  # one answer, or the next line of a streamed reply
FIRST_BYTES = 10  # times that for a reply's first bytes: the prompt read (a 70B model over RPC)
CONNECT_S = 15.0
MAX_ANSWER = 32 << 20  # bytes of one JSON answer
MAX_LINE = 4 << 20  # bytes of one line (one event) of a streamed reply
STEP_S = 0.1  # how often a wait looks at the stop request


class ServerError(AirochatError):
    """The server cannot be reached, or answered with an error."""


class ServerUnreachable(ServerError):
    """No connection to the server at all (nothing there, refused, timed out connecting)."""


class ServerGone(AirochatError):
    """The server went away in the middle of a reply: the turn is dropped, the chat kept."""


def check_api_key(api_key: str) -> None:
    """A key goes into an HTTP header: a newline there would add headers of the key's own
    (and httpx's error quotes the whole header), a non-ASCII one cannot be sent. Refused in a
    line that never shows the key."""
    if not all(" " <= c <= "~" for c in api_key):
        raise UsageError(
            "the API key (--api-key or AIROCHAT_API_KEY) holds a control character, a line "
            "break or a non-ASCII character; it is not shown here: check how it was copied"
        )


def client(url: str, api_key: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> httpx.Client:
    import httpx

    if api_key:
        check_api_key(api_key)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers=headers,
        timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_S, timeout_s)),
        # Servers close idle connections (llama-server after 5 s); a pooled connection kept
        # as long would be reused just as the server drops it.
        limits=httpx.Limits(keepalive_expiry=1.0),
        transport=httpx.HTTPTransport(retries=1),
    )


def sniff(url: str, timeout_s: float = 5.0) -> None:
    """Refuse at once something at `url` that is not an HTTP server (an SSH daemon greets a
    client with its banner; an HTTP client would wait for headers that never come)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return  # https: the TLS handshake says it
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout_s) as sock:
            sock.settimeout(min(timeout_s, 0.5))
            try:
                greeting = sock.recv(64)  # an HTTP server says nothing before the request
            except TimeoutError:
                return
    except OSError as exc:
        raise ServerUnreachable(f"cannot reach the server at {url}: {_why(exc)}") from None
    if greeting and not greeting.startswith(b"HTTP/"):
        shown = greeting.split(b"\n")[0].decode("ascii", "replace").strip()
        shown = "".join(c if c.isprintable() else "?" for c in shown)[:60]
        raise ServerError(f"{url} is not an HTTP server: it greets with {shown!r}")


def _body(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300]
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message", err)
    return " ".join(str(err).split())[:300]


def check(response: httpx.Response, what: str) -> None:
    code = response.status_code
    if 300 <= code < 400:
        where = response.headers.get("location", "elsewhere")
        raise ServerError(
            f"{what}: the server answered {code}, a redirect to {where[:200]} "
            "(give the address it points to with --server)"
        )
    if code >= 400 or code < 200:
        response.read()
        if code in (401, 403):
            raise ServerError(f"{what}: {code} (give the key with --api-key)")
        raise ServerError(f"{what}: the server answered {code}: {_body(response)}")


def request(http: httpx.Client, method: str, path: str, what: str, **kwargs: Any) -> Any:
    """One JSON request; connection problems, HTTP errors, a silent or huge answer as one
    line. A request the server dropped unanswered (a kept-alive connection it had just
    closed) is sent once more: nothing happened for it."""
    import httpx

    for attempt in (1, 2):
        try:
            with http.stream(method, path, **kwargs) as response:
                check(response, what)
                body = _read_capped(response, MAX_ANSWER, what)
            break
        except httpx.RemoteProtocolError:
            if attempt == 2:
                raise ServerError(
                    f"the server at {http.base_url} keeps dropping requests"
                ) from None
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise ServerUnreachable(f"cannot reach the server at {http.base_url}") from None
            raise ServerError(f"{what}: the server at {http.base_url} did not answer") from None
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach the server at {http.base_url}: {_why(exc)}"
            ) from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ServerError(f"{what}: the server's answer is not JSON") from None


def _read_capped(response: httpx.Response, cap: int, what: str) -> bytes:
    out = bytearray()
    for data in response.iter_bytes():
        out += data
        if len(out) > cap:
            raise ServerError(f"{what}: the server's answer is over {cap >> 20} MiB")
    return bytes(out)


def answer_object(data: Any, what: str) -> dict[str, Any]:
    """A JSON answer that must be an object."""
    if not isinstance(data, dict):
        raise ServerError(f"{what}: the server's answer is not a JSON object")
    return data


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


_END = object()


class _Feed:
    """A streamed POST in a worker thread, its lines handed over through a bounded queue."""

    def __init__(
        self, http: httpx.Client, path: str, body: dict[str, Any], what: str, first_s: float
    ) -> None:
        self.http, self.path, self.body, self.what = http, path, body, what
        self.first_s = first_s
        self.lines: queue.Queue[object] = queue.Queue(maxsize=256)
        self.stopping = threading.Event()
        self.sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name="airochat-stream", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._post()
            self._put(_END)
        except BaseException as exc:  # handed to the reader below
            self._put(exc)

    def _post(self) -> None:
        import httpx

        # The reader below says a silence first; the socket's own timeout is the backstop.
        timeout = httpx.Timeout(self.first_s + 5, connect=min(CONNECT_S, self.first_s))
        for attempt in (1, 2):
            try:
                with self.http.stream("POST", self.path, json=self.body, timeout=timeout) as resp:
                    stream = resp.extensions.get("network_stream")
                    self.sock = stream.get_extra_info("socket") if stream is not None else None
                    check(resp, self.what)
                    self._split(resp)
                    self.sock = None  # answered in full: the connection goes back to the pool
                    return
            except httpx.RemoteProtocolError as exc:
                if attempt == 2 or "without sending a response" not in str(exc):
                    raise

    def _split(self, response: httpx.Response) -> None:
        pending = b""
        for data in response.iter_bytes():
            if self.stopping.is_set():
                return
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._put(line.rstrip(b"\r").decode("utf-8", "replace"))
            if len(pending) > MAX_LINE:
                raise ServerError(
                    f"the server sent a line over {MAX_LINE >> 20} MiB: not a reply stream"
                )
        if pending:
            self._put(pending.decode("utf-8", "replace"))

    def _put(self, item: object) -> None:
        while not self.stopping.is_set():
            try:
                self.lines.put(item, timeout=STEP_S)
                return
            except queue.Full:
                continue

    def abandon(self) -> None:
        """Stop reading: the worker ends with the stream (a silent server's socket is shut, so
        its read returns at once) and the server sees its client go."""
        self.stopping.set()
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(0.5)


def stream_lines(
    http: httpx.Client,
    path: str,
    body: dict[str, Any],
    what: str,
    stopped: Callable[[], bool],
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Generator[str, None, None]:
    """The lines of a streamed POST's answer. Ends early, closing the stream, when `stopped()`
    turns true (checked every STEP_S); a server silent for too long is ServerGone."""
    first_s = FIRST_BYTES * timeout_s
    feed = _Feed(http, path, body, what, first_s)
    try:
        wait, got = first_s, False
        deadline = time.monotonic() + wait
        while not stopped():
            try:
                item = feed.lines.get(timeout=STEP_S)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise ServerGone(
                        f"the server sent nothing for {wait:.0f} s mid-reply; this turn is "
                        "dropped, the chat is as it was before it"
                    ) from None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise _mapped(item, http, got)
            wait, got = timeout_s, True
            deadline = time.monotonic() + wait
            yield str(item)
    finally:
        feed.abandon()


def _mapped(exc: BaseException, http: httpx.Client, got: bool) -> BaseException:
    """A worker's failure as the one line it means."""
    import httpx

    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or (
        isinstance(exc, httpx.TransportError) and not got and not _is_protocol(exc)
    ):
        return ServerUnreachable(f"cannot reach the server at {http.base_url}: {_why(exc)}")
    if isinstance(exc, httpx.TransportError):
        return ServerGone(
            f"the server went away mid-reply ({_why(exc)}); this turn is dropped, the chat is "
            "as it was before it"
        )
    return exc


def _is_protocol(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.ReadTimeout)


def events(
    lines: Iterator[str], on_done: Callable[[], None] = lambda: None
) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent-events stream (`data: {...}` lines), until [DONE]
    (`on_done` is told: a stream that stops short of it was cut)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            on_done()
            return
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            continue
        if "\\ud" in data.lower():  # lone surrogates (valid JSON) would fail any write
            event = valid_json(event)
        if isinstance(event, dict) and "error" in event:
            raise ServerError(f"the server failed mid-reply: {_body_of(event)}")
        if isinstance(event, dict):
            yield event


def _body_of(event: dict[str, Any]) -> str:
    err = event.get("error")
    if isinstance(err, dict):
        err = err.get("message", err)
    return " ".join(str(err).split())[:300]
