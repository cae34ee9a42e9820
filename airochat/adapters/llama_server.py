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
from dataclasses import dataclass, field, replace
from typing import Any

from airochat.adapters.http_engine import (
    Chunk,
    HttpEngine,
    LlamaCppDialect,
    Reply,
    count,
    token_ids,
)
from airochat.adapters.reply_clock import ReplyClock
from airochat.adapters.server_http import (
    DEFAULT_TIMEOUT_S,
    ServerError,
    answer_object,
    events,
    request,
    sniff,
    stream_lines,
)
from airochat.domain.config import Sampling
from airochat.domain.engine import Capabilities, Dropped
from airochat.domain.events import EngineEvent, FinishReason
from airochat.domain.templates import BOS, EOS, Special

# Chunks of at least this many tokens are reused by shifting (llama-server's --cache-reuse).
CACHE_REUSE = 64


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


def read_facts(http: Any, url: str) -> ServerFacts:
    """/props and /v1/models, each checked for the shape llama-server gives them."""
    props = answer_object(
        request(http, "GET", "/props", "reading the server's /props"), "reading /props"
    )
    models = answer_object(
        request(http, "GET", "/v1/models", "reading the server's /v1/models"),
        "reading /v1/models",
    )
    listed = models.get("data")
    first = listed[0] if isinstance(listed, list) and listed else {}
    meta = first.get("meta") if isinstance(first, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    settings = props.get("default_generation_settings")
    settings = settings if isinstance(settings, dict) else {}
    return ServerFacts(
        url=url,
        model=str(props.get("model_alias") or props.get("model_path") or "llama-server"),
        n_ctx=count(settings.get("n_ctx") or meta.get("n_ctx") or 0, "n_ctx"),
        n_vocab=count(meta.get("n_vocab") or 0, "n_vocab"),
        bos_text=str(props.get("bos_token") or ""),
        eos_text=str(props.get("eos_token") or ""),
        chat_template=str(props.get("chat_template") or ""),
        extra={"build": props.get("build_info", ""), "model_path": props.get("model_path")},
    )


class LlamaServerEngine(HttpEngine):
    def __init__(
        self, url: str, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        sniff(url)
        super().__init__(url, api_key, timeout_s)
        self.dialect = LlamaCppDialect(self.http)
        self.facts = read_facts(self.http, url)
        if self.facts.n_ctx < 1:
            raise ServerError(f"the server at {url} does not say its context size (n_ctx)")
        self.bos_id, self.add_bos = self._bos()
        ids = self.dialect.tokenize(self.facts.eos_text, special=True)
        self._eos = ids[0] if len(ids) == 1 else -1

    def _bos(self) -> tuple[int, bool]:
        plain = self.dialect.tokenize("a")
        with_special = self.dialect.tokenize("a", add_special=True)
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

    def special_token(self, special: Special) -> list[int]:
        if special == BOS:
            return [self.bos_id] if self.add_bos and self.bos_id >= 0 else []
        if special == EOS:
            return [self._eos]
        ids = self.dialect.tokenize(special.name, special=True)
        return ids if len(ids) == 1 else self.tokenize_text(special.name)

    def read_cold(self, tokens: Sequence[int]) -> float:
        """Seconds the server takes to read `tokens` with nothing cached (its own timing)."""
        body = {"prompt": list(tokens), "n_predict": 0, "cache_prompt": False, "id_slot": 0}
        data = request(self.http, "POST", "/completion", "reading on the server", json=body)
        timings = answer_object(data, "reading on the server").get("timings")
        ms = timings.get("prompt_ms", 0.0) if isinstance(timings, dict) else 0.0
        return float(ms) / 1000 if isinstance(ms, int | float) else 0.0

    def _stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self._stop = False
        what = "generating on the server"
        lines = stream_lines(self.http, "/completion", body, what, self.stopped, self.timeout_s)
        return events(lines)

    def stopped(self) -> bool:
        return self._stop

    def bare_tps(self, prompt: Sequence[int], sampling: Sampling) -> tuple[int, float]:
        """Continue `prompt` through /completion directly, same seed: (tokens, tokens/s)."""
        body = _sampling_body(sampling) | {
            "prompt": list(prompt), "n_predict": sampling.max_tokens, "seed": sampling.seed,
            "stream": True, "cache_prompt": True, "return_tokens": True, "id_slot": 0,
        }  # fmt: skip
        clock = ReplyClock()
        for event in self._stream(body):
            tokens = event.get("tokens")
            if isinstance(tokens, list) and tokens:
                clock.tick(len(tokens))
        return clock.received, clock.tokens_per_s

    def bare_chat_tps(
        self, turns: list[str], reply_end: str, sampling: Sampling, stop: list[str], n: int
    ) -> float:
        """The scripted chat as one growing text through llama-server's own /completion
        (it tokenizes, caches the prompt, stops on the strings): decode tokens/s over the
        stream as a client sees it, the same measure as airochat's."""
        transcript, decoded, seconds = "", 0, 0.0
        for turn in turns:
            transcript += turn
            if len(self.tokenize_text(transcript)) + n >= self.n_ctx:
                break  # a plain completion cannot drop old turns: measure what fits
            body = _sampling_body(sampling) | {
                "prompt": transcript, "n_predict": n, "seed": max(sampling.seed, 0),
                "stop": stop, "stream": True, "cache_prompt": True, "id_slot": 0,
            }  # fmt: skip
            reply, got, first, last = "", 0, 0.0, 0.0
            for event in self._stream(body):
                tokens = event.get("tokens")
                if isinstance(tokens, list) and tokens:
                    last = time.perf_counter()
                    first = first or last
                    got += len(tokens)
                reply += str(event.get("content", ""))
            if got > 1:
                decoded += got - 1  # the first token's time belongs to the prompt read
                seconds += last - first
            transcript += reply + reply_end
        return decoded / seconds if seconds else 0.0

    # -- generation ----------------------------------------------------------------------------

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
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
        reply = Reply(self, stop, sampling.max_tokens)
        yield from self._read("/completion", body, reply, self._chunk)
        exact = reply.exact and reply.text.tokens
        tokens = list(reply.text.tokens) if exact else self.tokenize_text(reply.text.text)
        timings = reply.meta.get("timings")
        read = timings.get("prompt_n") if isinstance(timings, dict) else None
        n_read = int(read) if isinstance(read, int | float) and read >= 0 else -1
        drafted, accepted = draft_counts(timings)
        yield replace(reply.done(tokens, len(prompt), n_read), drafted=drafted, accepted=accepted)

    def _chunk(self, event: dict[str, Any]) -> Chunk:
        """One /completion event: its tokens (up to EOS) and text, how the reply ends."""
        meta = {"timings": event["timings"]} if isinstance(event.get("timings"), dict) else {}
        ends = event.get("stop") and event.get("stop_type") in ("eos", "word")
        finish: FinishReason | None = "stop" if ends else None
        raw = event.get("tokens") or []
        ids = token_ids(raw)
        content = event.get("content", "")
        data = content.encode("utf-8", "replace") if isinstance(content, str) else b""
        if ids is not None and self._eos in ids:
            ids, finish = ids[: ids.index(self._eos)], "stop"
            data = data if ids else b""
        if ids is None:  # not token ids: the text alone, its tokens found from it
            ids = []
        return Chunk(ids if ids or not data else None, data, finish, meta)


def draft_counts(timings: Any) -> tuple[int, int]:
    """(drafted, accepted) as a speculating llama-server reports them in its timings
    (`draft_n`, `draft_n_accepted`); (0, 0) where it says nothing, or nothing believable."""
    if not isinstance(timings, dict):
        return 0, 0
    drafted, accepted = timings.get("draft_n"), timings.get("draft_n_accepted", 0)
    if type(drafted) is not int or type(accepted) is not int:  # not bool, float, text
        return 0, 0
    return (drafted, accepted) if 0 <= accepted <= drafted < 1 << 31 else (0, 0)


def _sampling_body(sampling: Sampling) -> dict[str, Any]:
    """The sampler fields of a /completion request."""
    return {
        "temperature": sampling.temperature,
        "top_k": sampling.top_k,
        "top_p": sampling.top_p,
        "min_p": sampling.min_p,
        "repeat_penalty": sampling.repeat_penalty,
    }
