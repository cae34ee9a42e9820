"""llama.cpp's own llama-server as an `Engine`, over HTTP.

The chat stays token-exact: prompts go to `POST /completion` as token ids (text is tokenized by
the server's `/tokenize`, special tokens by its vocabulary), with `cache_prompt` so the server
reuses its KV cache for the common prefix and `n_cache_reuse` so, when old exchanges were
dropped, it shifts the cache of what stays instead of reading it again. The reply streams back
as token ids; stop strings are cut on those tokens exactly as in-process, and the stream is
closed at once (llama-server stops generating when its client goes). What the server read and
how long it took come from its own `timings`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airochat.adapters.reply_clock import ReplyClock
from airochat.adapters.server_http import (
    ServerGone,
    ServerUnreachable,
    client,
    events,
    request,
    stream,
)
from airochat.domain.config import Sampling
from airochat.domain.engine import Capabilities, Dropped
from airochat.domain.events import Done, EngineEvent, FinishReason, TextChunk
from airochat.domain.stops import ReplyText
from airochat.domain.templates import BOS, EOS, Special

if TYPE_CHECKING:
    import httpx

# Chunks of at least this many tokens are reused by shifting (llama-server's --cache-reuse).
CACHE_REUSE = 64
# No vocabulary scan over HTTP: a generous bound on the bytes one token stands for.
MAX_TOKEN_BYTES = 128


@dataclass
class ServerFacts:
    """What the server says about itself and its model."""

    url: str
    model: str  # the model's name as the server gives it (its alias, else its file)
    n_ctx: int
    n_vocab: int
    bos_text: str
    eos_text: str
    chat_template: str
    extra: dict[str, Any] = field(default_factory=dict)


class _ChunkPieces:
    """Feeds `ReplyText` the bytes of a streamed chunk: the chunk's text goes with its first
    token, so the reply's text is exactly what the server sent and stop strings are cut on
    the tokens that carry them."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def piece(self, token: int) -> bytes:
        return self.pending.pop(0) if self.pending else b""


class LlamaServerEngine:
    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.http: httpx.Client = client(url, api_key)
        self.facts = self._facts(url)
        self._stop = False
        self.bos_id, self.add_bos = self._bos()
        ids = self._tokenize(self.facts.eos_text, parse_special=True)
        self._eos = ids[0] if len(ids) == 1 else -1
        self._token_text = lru_cache(maxsize=65536)(self._detokenize_one)
        self._tokenize_cached = lru_cache(maxsize=1024)(self._tokenize_plain)

    def _facts(self, url: str) -> ServerFacts:
        props = request(self.http, "GET", "/props", "reading the server's /props")
        models = request(self.http, "GET", "/v1/models", "reading the server's /v1/models")
        meta = (models.get("data") or [{}])[0].get("meta") or {}
        settings = props.get("default_generation_settings") or {}
        return ServerFacts(
            url=url,
            model=str(props.get("model_alias") or props.get("model_path") or "llama-server"),
            n_ctx=int(settings.get("n_ctx") or meta.get("n_ctx") or 0),
            n_vocab=int(meta.get("n_vocab") or 0),
            bos_text=str(props.get("bos_token") or ""),
            eos_text=str(props.get("eos_token") or ""),
            chat_template=str(props.get("chat_template") or ""),
            extra={"build": props.get("build_info", ""), "model_path": props.get("model_path")},
        )

    def _bos(self) -> tuple[int, bool]:
        plain = self._tokenize("a", parse_special=False)
        with_special = self._tokenize("a", parse_special=False, add_special=True)
        added = len(with_special) > len(plain)
        return (with_special[0] if added else -1), added

    # -- the Engine protocol: facts and tokens -------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self.facts.n_ctx

    @property
    def n_vocab(self) -> int:
        return self.facts.n_vocab or 1 << 31

    @property
    def eos_id(self) -> int:
        return self._eos

    @property
    def max_token_bytes(self) -> int:
        return MAX_TOKEN_BYTES

    @property
    def capabilities(self) -> Capabilities:
        # The server shifts reused chunks itself (n_cache_reuse); its cache stays on it.
        return Capabilities(can_shift=True, keeps_cache=False, exact_token_ids=True)

    def drop_cached(self, start: int, end: int) -> Dropped:
        # Nothing to do here: the next request's n_cache_reuse finds the kept chunk and the
        # server shifts it. Its timings (prompt_n) show whether it did.
        return Dropped.ON_NEXT_READ

    # -- bench probes: the server's own completion API --------------------------------------------

    @property
    def threads(self) -> int:
        return 0  # the server's business

    @property
    def load_s(self) -> float:
        return 0.0

    def _tokenize(self, text: str, parse_special: bool, add_special: bool = False) -> list[int]:
        body = {"content": text, "add_special": add_special, "parse_special": parse_special}
        data = request(self.http, "POST", "/tokenize", "tokenizing on the server", json=body)
        return [int(t if isinstance(t, int) else t["id"]) for t in data.get("tokens", [])]

    def _tokenize_plain(self, text: str) -> tuple[int, ...]:
        return tuple(self._tokenize(text, parse_special=False))

    def tokenize_text(self, text: str) -> list[int]:
        return list(self._tokenize_cached(text)) if text else []

    def special_token(self, special: Special) -> list[int]:
        if special == BOS:
            return [self.bos_id] if self.add_bos and self.bos_id >= 0 else []
        if special == EOS:
            return [self._eos]
        ids = self._tokenize(special.name, parse_special=True)
        return ids if len(ids) == 1 else self.tokenize_text(special.name)

    def _detokenize_one(self, token: int) -> str:
        data = request(
            self.http, "POST", "/detokenize", "detokenizing on the server", json={"tokens": [token]}
        )
        return str(data.get("content", ""))

    def token_text(self, token: int) -> str:
        return str(self._token_text(token))

    def piece(self, token: int) -> bytes:
        return self.token_text(token).encode("utf-8")

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not tokens:
            return ""
        data = request(
            self.http, "POST", "/detokenize", "detokenizing on the server",
            json={"tokens": list(tokens)},
        )  # fmt: skip
        return str(data.get("content", ""))

    def read_cold(self, tokens: Sequence[int]) -> float:
        """Seconds the server takes to read `tokens` with nothing cached (its own timing)."""
        body = {"prompt": list(tokens), "n_predict": 0, "cache_prompt": False, "id_slot": 0}
        data = request(self.http, "POST", "/completion", "reading on the server", json=body)
        return float((data.get("timings") or {}).get("prompt_ms", 0.0)) / 1000

    def bare_tps(self, prompt: Sequence[int], sampling: Sampling) -> tuple[int, float]:
        """Continue `prompt` through /completion directly, same seed: (tokens, tokens/s)."""
        body = _sampling_body(sampling) | {
            "prompt": list(prompt), "n_predict": sampling.max_tokens, "seed": sampling.seed,
            "stream": True, "cache_prompt": True, "return_tokens": True, "id_slot": 0,
        }  # fmt: skip
        clock = ReplyClock()
        with stream(self.http, "/completion", body, "generating on the server") as response:
            for event in events(response):
                if event.get("tokens"):
                    clock.tick(len(event["tokens"]))
        return clock.received, clock.tokens_per_s

    def bare_chat_tps(
        self, turns: list[str], reply_end: str, sampling: Sampling, stop: list[str], n: int
    ) -> float:
        """The scripted chat as one growing text through llama-server's own /completion
        (it tokenizes, caches the prompt, stops on the strings): decode tokens/s over the
        stream as a client sees it, the same measure as airochat's."""
        import httpx

        try:
            return self._bare_chat_tps(turns, reply_end, sampling, stop, n)
        except httpx.TransportError as exc:
            raise ServerGone(f"the server went away during the baseline: {exc}") from None

    def _bare_chat_tps(
        self, turns: list[str], reply_end: str, sampling: Sampling, stop: list[str], n: int
    ) -> float:
        transcript, decoded, seconds = "", 0, 0.0
        for turn in turns:
            transcript += turn
            body = _sampling_body(sampling) | {
                "prompt": transcript, "n_predict": n, "seed": max(sampling.seed, 0),
                "stop": stop, "stream": True, "cache_prompt": True, "id_slot": 0,
            }  # fmt: skip
            reply, count, first, last = "", 0, 0.0, 0.0
            with stream(self.http, "/completion", body, "generating on the server") as response:
                for event in events(response):
                    tokens = event.get("tokens") or []
                    if tokens:
                        last = time.perf_counter()
                        first = first or last
                        count += len(tokens)
                    reply += str(event.get("content", ""))
            if count > 1:
                decoded += count - 1  # the first token's time belongs to the prompt read
                seconds += last - first
            transcript += reply + reply_end
        return decoded / seconds if seconds else 0.0

    # -- generation ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        self.http.close()

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
        import httpx

        body = _sampling_body(sampling) | {
            "prompt": list(prompt),
            "n_predict": sampling.max_tokens,
            "seed": sampling.seed if sampling.seed >= 0 else -1,
            "stream": True,
            "cache_prompt": True,
            "return_tokens": True,
            "n_cache_reuse": CACHE_REUSE,
            "id_slot": 0,
            "timings_per_token": True,  # what was read is known even if we close early
        }
        self._stop = False
        start = time.perf_counter()
        try:
            with stream(self.http, "/completion", body, "generating on the server") as response:
                yield from _Reply(self, stop, len(prompt), start).read(events(response))
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach the server at {self.facts.url}: {exc}") from None


def _sampling_body(sampling: Sampling) -> dict[str, Any]:
    """The sampler fields of a /completion request."""
    return {
        "temperature": sampling.temperature,
        "top_k": sampling.top_k,
        "top_p": sampling.top_p,
        "min_p": sampling.min_p,
        "repeat_penalty": sampling.repeat_penalty,
    }


class _Reply:
    """One streamed reply: tokens in, text chunks out, the stop decided here."""

    def __init__(self, engine: LlamaServerEngine, stop: Sequence[str], n_prompt: int, start: float):
        self.engine = engine
        self.pieces = _ChunkPieces()
        self.text = ReplyText(self.pieces, stop)
        self.n_prompt = n_prompt
        self.clock = ReplyClock(start)
        self.finish: FinishReason = "length"
        self.timings: dict[str, Any] = {}

    def read(self, stream: Iterator[dict[str, Any]]) -> Iterator[EngineEvent]:
        for event in stream:
            yield from self._chunk(event)
            if self.text.stopped or self.engine._stop or event.get("stop"):
                self._end(event)
                break
        tail = self.text.flush()
        if tail:
            yield TextChunk(tail)
        yield self._done()

    def _chunk(self, event: dict[str, Any]) -> Iterator[EngineEvent]:
        if isinstance(event.get("timings"), dict):
            self.timings = event["timings"]
        tokens = [int(t) for t in event.get("tokens") or []]
        if not tokens:
            return
        self.clock.tick(len(tokens))
        self.pieces.pending = [str(event.get("content", "")).encode("utf-8")] + [b""] * (
            len(tokens) - 1
        )
        for token in tokens:
            if token == self.engine.eos_id:
                self.finish = "stop"
                return
            chunk = self.text.add(token)
            if chunk:
                yield TextChunk(chunk)
            if self.text.stopped:
                self.finish = "stop"
                return

    def _end(self, event: dict[str, Any]) -> None:
        if self.engine._stop and not self.text.stopped:
            self.finish = "interrupted"
        elif event.get("stop") and event.get("stop_type") in ("eos", "word"):
            self.finish = "stop"

    def _done(self) -> Done:
        read = self.timings.get("prompt_n")
        return Done(
            finish_reason=self.finish,
            text=self.text.text,
            tokens=list(self.text.tokens),
            prompt_tokens=self.n_prompt,
            prompt_eval_tokens=int(read) if isinstance(read, int | float) else -1,
            ttft_s=self.clock.ttft_s,
            decode_s=self.clock.decode_s,
            generated=self.clock.received,
            stopped_by=self.text.stopped_by,
        )
