"""What every engine over HTTP shares: tokens through a pluggable tokenizer dialect (llama.cpp's
`/tokenize`, vLLM's, or none: bytes as stand-in ids), the stop request, closing, and one reader
that turns a streamed reply's chunks into the chat's events.

The reader enforces what the chat asked, whatever the server does: at most
`sampling.max_tokens` tokens (then the stream is closed), stop strings cut on the tokens that
carry them, and a stop request honoured within a tenth of a second (server_http.stream_lines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from airochat.adapters.reply_clock import ReplyClock
from airochat.adapters.server_http import (
    DEFAULT_TIMEOUT_S,
    ServerError,
    answer_object,
    client,
    events,
    request,
    stream_lines,
)
from airochat.domain.events import Done, EngineEvent, FinishReason, TextChunk
from airochat.domain.stops import ReplyText

if TYPE_CHECKING:
    import httpx

# Text mode (no /tokenize): stand-in ids that size the context, token = byte + 3, BOS 1, EOS 2
# (spelled out in the prompt text); never saved (Capabilities.exact_token_ids is False).
OFFSET = 3
MAX_TOKEN_BYTES = 128  # no vocabulary scan over HTTP: a generous bound


def token_ids(value: Any) -> list[int] | None:
    """Token ids as a server gives them (ints, or objects with an int `id`), or None when
    any of them is not a token id at all (a string, a float, a negative number)."""
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        t = item.get("id") if isinstance(item, dict) else item
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            return None
        out.append(t)
    return out


def count(value: Any, what: str) -> int:
    """A whole number the server reports (n_ctx ...), refused in one line when it is not."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ServerError(f"the server's {what} is not a number: {str(value)[:40]!r}")
    try:
        number = int(value)
    except (ValueError, OverflowError):
        raise ServerError(f"the server's {what} is not a number: {str(value)[:40]!r}") from None
    if number < 0 or number >= 1 << 40:
        raise ServerError(f"the server's {what} is out of range: {number}")
    return number


class Dialect(Protocol):
    """How a server tokenizes, if it does."""

    @property
    def exact(self) -> bool:
        """The ids are the model's own (False: byte stand-ins)."""
        ...

    def tokenize(
        self, text: str, special: bool = False, add_special: bool = False
    ) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...


@dataclass
class LlamaCppDialect:
    """llama.cpp's `/tokenize` {content, add_special, parse_special} and `/detokenize`."""

    http: httpx.Client
    exact: bool = True

    def tokenize(self, text: str, special: bool = False, add_special: bool = False) -> list[int]:
        body = {"content": text, "add_special": add_special, "parse_special": special}
        return _ids(request(self.http, "POST", "/tokenize", "tokenizing on the server", json=body))

    def detokenize(self, tokens: Sequence[int]) -> str:
        body = {"tokens": list(tokens)}
        data = request(self.http, "POST", "/detokenize", "detokenizing on the server", json=body)
        return str(answer_object(data, "detokenizing on the server").get("content", ""))


@dataclass
class VllmDialect:
    """vLLM's `/tokenize` {model, prompt, add_special_tokens} and `/detokenize`."""

    http: httpx.Client
    model: str
    exact: bool = True

    def tokenize(self, text: str, special: bool = False, add_special: bool = False) -> list[int]:
        body = {"model": self.model, "prompt": text, "add_special_tokens": add_special}
        return _ids(request(self.http, "POST", "/tokenize", "tokenizing on the server", json=body))

    def detokenize(self, tokens: Sequence[int]) -> str:
        body = {"model": self.model, "tokens": list(tokens)}
        data = request(self.http, "POST", "/detokenize", "detokenizing on the server", json=body)
        return str(answer_object(data, "detokenizing on the server").get("prompt", ""))


@dataclass
class ByteDialect:
    """No tokenizer on the server: bytes stand in for tokens (byte + 3; BOS 1 and EOS 2,
    spelled `<s>` and `</s>` in the prompt's text)."""

    exact: bool = False

    def tokenize(self, text: str, special: bool = False, add_special: bool = False) -> list[int]:
        return [b + OFFSET for b in text.encode("utf-8")]

    def detokenize(self, tokens: Sequence[int]) -> str:
        spelled = {1: b"<s>", 2: b"</s>"}
        data = b"".join(spelled.get(t) or bytes([t - OFFSET]) for t in tokens if t < 256 + OFFSET)
        return data.decode("utf-8", errors="replace")


def _ids(data: Any) -> list[int]:
    ids = token_ids(answer_object(data, "tokenizing on the server").get("tokens", []))
    if ids is None:
        raise ServerError("tokenizing on the server: the answer holds no token ids")
    return ids


@dataclass
class Chunk:
    """One part of a streamed reply, as the engine's parser reads it from an event."""

    ids: list[int] | None  # the tokens it stands for (None: the server gave none)
    data: bytes = b""
    finish: FinishReason | None = None  # the server said how the reply ends
    meta: dict[str, Any] = field(default_factory=dict)  # timings, usage
    ended: bool = False  # the server said the reply ends here (any finish reason)
    answered: bool = True  # the event held completion text (False: no `choices[].text`)


class Reply:
    """One streamed reply: chunks in, the chat's events out; the limits decided here."""

    def __init__(self, engine: HttpEngine, stop: Sequence[str], max_tokens: int) -> None:
        self.text = ReplyText(engine, stop)
        self.clock = ReplyClock()
        self.max_tokens = max(max_tokens, 1)
        self.finish: FinishReason = "length"
        self.exact = engine.dialect.exact
        self.meta: dict[str, Any] = {}
        self.ended = False  # a finish reason or the stream's [DONE] came
        self.answered = False  # some event held a completion
        self.cut = False  # closed here: a stop string, the token limit, a stop request

    def server_done(self) -> None:
        self.ended = True

    def read(self, chunks: Iterator[Chunk], stopped: Callable[[], bool]) -> Iterator[EngineEvent]:
        for chunk in chunks:
            self.meta |= chunk.meta
            self.ended |= chunk.ended
            self.answered |= chunk.answered
            if chunk.ids or chunk.data:
                yield from self._add(chunk)
            if chunk.finish is not None:
                self.finish = chunk.finish
            if self.text.stopped:
                self.finish, self.cut = "stop", True
                break
            if self.clock.received >= self.max_tokens:
                # the server ignored the limit: the stream is closed
                self.finish, self.cut = "length", True
                break
        if stopped():
            self.cut = True
            if not self.text.stopped:
                self.finish = "interrupted"
        tail = self.text.flush()
        if tail:
            yield TextChunk(tail)

    def _add(self, chunk: Chunk) -> Iterator[EngineEvent]:
        ids = chunk.ids
        if not ids:
            self.exact = False  # text without ids: the reply's tokens come from its text
            ids = [-1]
        ids = ids[: self.max_tokens - self.clock.received]
        self.clock.tick(len(ids))
        out = self.text.add_chunk(ids, chunk.data)
        if out:
            yield TextChunk(out)

    def done(self, tokens: list[int], n_prompt: int, read: int, generated: int = 0) -> Done:
        return Done(
            finish_reason=self.finish,
            text=self.text.text,
            tokens=tokens,
            prompt_tokens=n_prompt,
            prompt_eval_tokens=read,
            ttft_s=self.clock.ttft_s,
            decode_s=self.clock.decode_s,
            generated=generated or self.clock.received,
            stopped_by=self.text.stopped_by,
        )


class HttpEngine:
    """The parts of an `Engine` every server shares; a subclass says how its server
    tokenizes (`dialect`), how a request is made and how an event reads."""

    dialect: Dialect

    def __init__(self, url: str, api_key: str | None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.url = url
        self.timeout_s = timeout_s
        self.http: httpx.Client = client(url, api_key, timeout_s)
        self._stop = False
        self._tokens: Callable[[str], tuple[int, ...]] = lru_cache(maxsize=1024)(
            lambda text: tuple(self.dialect.tokenize(text))
        )
        self._texts: Callable[[int], str] = lru_cache(maxsize=65536)(
            lambda token: self.dialect.detokenize([token])
        )

    @property
    def max_token_bytes(self) -> int:
        return MAX_TOKEN_BYTES if self.dialect.exact else 1

    def tokenize_text(self, text: str) -> list[int]:
        return list(self._tokens(text)) if text else []

    def token_text(self, token: int) -> str:
        return self._texts(token)

    def piece(self, token: int) -> bytes:
        if not self.dialect.exact:
            return bytes([token - OFFSET]) if OFFSET <= token < 256 + OFFSET else b""
        return self.token_text(token).encode("utf-8")

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.dialect.detokenize(tokens) if tokens else ""

    def request_stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        self.http.close()

    def _read(
        self,
        path: str,
        body: dict[str, Any],
        reply: Reply,
        parse: Callable[[dict[str, Any]], Chunk],
    ) -> Iterator[EngineEvent]:
        """Stream `body` to `path` and read the answer into `reply`: its text as events."""
        self._stop = False
        stopped = lambda: self._stop  # noqa: E731
        lines = stream_lines(
            self.http, path, body, "generating on the server", stopped, self.timeout_s
        )
        try:
            chunks = (parse(event) for event in events(lines, reply.server_done))
            yield from reply.read(chunks, stopped)
        finally:
            lines.close()  # closes the stream: the server stops generating
