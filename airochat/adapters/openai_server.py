"""OpenAI-compatible servers (vLLM, LM Studio, Ollama's /v1, llama-cpp-python's and llama.cpp's
servers) as an `Engine`.

Only `POST /v1/completions` is used -- never the chat endpoint -- so the prompt is airochat's
own, byte for byte. Where the server tokenizes (vLLM's and llama.cpp's `/tokenize`), prompts go
as token ids and the history stays token-exact; elsewhere the prompt goes as text and a byte
count stands in for tokens (said once). Stop strings are sent, and enforced here as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airochat.adapters.reply_clock import ReplyClock
from airochat.adapters.server_http import (
    ServerError,
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

# Text mode (no /tokenize): stand-in ids that size the context, token = byte + 3, BOS 1, EOS 2
# (spelled out in the prompt text); never saved (Capabilities.exact_token_ids is False).
OFFSET = 3
BYTES_PER_TOKEN = 3  # text mode: a conservative guess to size the context in bytes


class _Tokenizer:
    """The server's own tokenizer, found by trying the two shapes of `/tokenize` in use."""

    def __init__(self, http: httpx.Client, model: str) -> None:
        self.http, self.model = http, model
        self.shape = self._probe()

    def _probe(self) -> str:
        for shape in ("vllm", "llama"):
            try:
                if self._call(shape, "a", special=False):  # a server that ignored the fields
                    return shape  # answers with no tokens at all
            except ServerError:
                continue
        return ""

    def _call(self, shape: str, text: str, special: bool, add_bos: bool = False) -> list[int]:
        if shape == "vllm":
            body: dict[str, Any] = {"model": self.model, "prompt": text}
            body["add_special_tokens"] = add_bos
        else:
            body = {"content": text, "add_special": add_bos, "parse_special": special}
        data = request(self.http, "POST", "/tokenize", "tokenizing on the server", json=body)
        return [int(t if isinstance(t, int) else t["id"]) for t in data.get("tokens", [])]

    def __call__(self, text: str, special: bool = False, add_bos: bool = False) -> list[int]:
        return self._call(self.shape, text, special, add_bos)

    def bos(self) -> list[int]:
        """What the model puts before a prompt (its BOS), found by asking for it."""
        plain, added = self("a"), self("a", add_bos=True)
        return added[: len(added) - len(plain)] if added[-len(plain) :] == plain else []

    def text_of(self, tokens: Sequence[int]) -> str:
        if self.shape == "vllm":
            body: dict[str, Any] = {"model": self.model, "tokens": list(tokens)}
        else:
            body = {"tokens": list(tokens)}
        data = request(self.http, "POST", "/detokenize", "detokenizing on the server", json=body)
        return str(data.get("prompt", data.get("content", "")))


class OpenAIEngine:
    def __init__(self, url: str, model: str | None, api_key: str | None = None) -> None:
        self.http = client(url, api_key)
        self.url = url
        self.model, self.n_ctx = self._model(model)
        self.tokenizer = _Tokenizer(self.http, self.model)
        self.token_mode = bool(self.tokenizer.shape)
        self.notes: list[str] = []
        self._bos = self.tokenizer.bos() if self.token_mode else [1]
        self._eos = self._eos_ids()
        if not self.token_mode:
            self.n_ctx *= BYTES_PER_TOKEN
            self.notes.append(
                "this server has no /tokenize: prompts go as text and the context is sized "
                f"by bytes ({BYTES_PER_TOKEN} per token)"
            )
        self._stop = False
        self._tokens: Callable[[str], tuple[int, ...]] = lru_cache(maxsize=1024)(
            lambda text: tuple(self._tokenize(text))
        )
        self._texts: Callable[[int], str] = lru_cache(maxsize=65536)(self._text_of_one)

    def _model(self, wanted: str | None) -> tuple[str, int]:
        data = request(self.http, "GET", "/v1/models", "listing the server's models")
        models = [m for m in data.get("data", []) if isinstance(m, dict) and "id" in m]
        if not models:
            raise ServerError(f"{self.url} serves no model (/v1/models is empty)")
        ids = [str(m["id"]) for m in models]
        if wanted is None and len(models) > 1:
            raise ServerError(f"{self.url} serves {len(ids)} models; name one: {', '.join(ids)}")
        chosen = next((m for m in models if wanted in (None, m["id"])), None)
        if chosen is None:
            raise ServerError(f"{self.url} does not serve {wanted!r}; it serves {', '.join(ids)}")
        meta = chosen.get("meta") or {}
        n_ctx = chosen.get("max_model_len") or meta.get("n_ctx") or 4096
        return str(chosen["id"]), int(n_ctx)

    def _eos_ids(self) -> list[int]:
        """The model's end-of-sequence token, which closes every reply in the history: its
        text from llama.cpp's /props where there is one, else the Llama family's `</s>`."""
        if not self.token_mode:
            return [2]
        try:
            props = request(self.http, "GET", "/props", "reading /props")
            text = str(props.get("eos_token") or "</s>")
        except ServerError:
            text = "</s>"
        ids = self.tokenizer(text, special=True)
        if len(ids) != 1:
            self.notes.append(f"cannot tell this model's end-of-sequence token; using {text!r}")
        return ids

    # -- tokens ----------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[int]:
        if self.token_mode:
            return self.tokenizer(text)
        return [b + OFFSET for b in text.encode("utf-8")]

    def tokenize_text(self, text: str) -> list[int]:
        return list(self._tokens(text)) if text else []

    def special_token(self, special: Special) -> list[int]:
        if special == BOS:
            return list(self._bos)
        if special == EOS:
            return list(self._eos)
        if not self.token_mode:
            return self.tokenize_text(special.name)
        ids = self.tokenizer(special.name, special=True)
        return ids if len(ids) == 1 else self.tokenize_text(special.name)

    def _text_of_one(self, token: int) -> str:
        if not self.token_mode:
            return {1: "<s>", 2: "</s>"}.get(token) or bytes([max(token - OFFSET, 0)]).decode(
                "utf-8", errors="replace"
            )
        return self.tokenizer.text_of([token])

    def token_text(self, token: int) -> str:
        return self._texts(token)

    def piece(self, token: int) -> bytes:
        if not self.token_mode:
            return b"" if token < OFFSET else bytes([token - OFFSET])
        return self.token_text(token).encode("utf-8")

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not self.token_mode:
            return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")
        return self.tokenizer.text_of(tokens) if tokens else ""

    @property
    def eos_id(self) -> int:
        return self._eos[0] if len(self._eos) == 1 else -1

    @property
    def n_vocab(self) -> int:
        return 1 << 31 if self.token_mode else 256 + OFFSET  # the server's ids, else bytes

    @property
    def max_token_bytes(self) -> int:
        return 1 if not self.token_mode else 128

    @property
    def capabilities(self) -> Capabilities:
        # Prefix caching only: what stays after a drop is read again. Without /tokenize the
        # ids are bytes, stand-ins that size the context: the chat keeps the text instead.
        return Capabilities(can_shift=False, keeps_cache=False, exact_token_ids=self.token_mode)

    def drop_cached(self, start: int, end: int) -> Dropped:
        return Dropped.NOT_HELD

    # -- generation ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        self.http.close()

    def _prompt(self, prompt: Sequence[int]) -> list[int] | str:
        if self.token_mode:
            return list(prompt)
        return "".join(self.token_text(t) for t in prompt)

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
        import httpx

        body: dict[str, Any] = {
            "model": self.model,
            "prompt": self._prompt(prompt),
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": True,
            "stop": list(stop)[:4],  # OpenAI's limit; all of them are enforced here too
            "top_k": sampling.top_k if sampling.top_k > 0 else -1,
            "min_p": sampling.min_p,
            "repetition_penalty": sampling.repeat_penalty,
            "stream_options": {"include_usage": True},
        }
        if self.token_mode:  # the generated ids, so the history stays what the model wrote
            body |= {"logprobs": 1, "return_tokens_as_token_ids": True}
        if sampling.seed >= 0:
            body["seed"] = sampling.seed
        self._stop = False
        start = time.perf_counter()
        try:
            with stream(self.http, "/v1/completions", body, "generating on the server") as response:
                yield from self._read(events(response), stop, len(prompt), start)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach the server at {self.url}: {exc}") from None

    def _read(
        self, stream: Iterator[dict[str, Any]], stop: Sequence[str], n_prompt: int, start: float
    ) -> Iterator[EngineEvent]:
        pieces = _TextPieces()
        text = ReplyText(pieces, stop)
        finish: FinishReason = "length"
        clock = ReplyClock(start)
        usage: dict[str, Any] = {}
        exact = self.token_mode
        for event in stream:
            usage = event.get("usage") or usage
            choice = (event.get("choices") or [{}])[0]
            piece = str(choice.get("text") or "")
            ids = _token_ids(choice.get("logprobs"))
            exact = exact and (bool(ids) or not piece)
            if piece or ids:
                ids = ids or [-1]  # no ids from this server: the chunk stands for one token
                clock.tick(len(ids))
                pieces.pending = [piece.encode("utf-8")] + [b""] * (len(ids) - 1)
                for token in ids:
                    chunk = text.add(token)
                    if chunk:
                        yield TextChunk(chunk)
                    if text.stopped:
                        break
            if choice.get("finish_reason") == "stop" or text.stopped:
                finish = "stop"
            if text.stopped or self._stop:
                finish = "interrupted" if self._stop and not text.stopped else finish
                break
        tail = text.flush()
        if tail:
            yield TextChunk(tail)
        tokens = list(text.tokens) if exact else self.tokenize_text(text.text)
        yield self._done(text, tokens, finish, n_prompt, usage, clock)

    def _done(
        self,
        text: ReplyText,
        tokens: list[int],
        finish: FinishReason,
        n_prompt: int,
        usage: dict[str, Any],
        clock: ReplyClock,
    ) -> Done:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        read = n_prompt - int(cached) if isinstance(cached, int) else -1
        return Done(
            finish_reason=finish,
            text=text.text,
            tokens=tokens,
            prompt_tokens=n_prompt,
            prompt_eval_tokens=read,
            ttft_s=clock.ttft_s,
            decode_s=clock.decode_s,
            generated=int(usage.get("completion_tokens") or len(text.tokens)),
            stopped_by=text.stopped_by,
        )


def _token_ids(logprobs: Any) -> list[int]:
    """The generated token ids a chunk carries: llama.cpp's `logprobs.content[].id`, or
    vLLM's `logprobs.tokens` as "token_id:N" (with return_tokens_as_token_ids)."""
    if not isinstance(logprobs, dict):
        return []
    content = logprobs.get("content")
    if isinstance(content, list):
        return [int(c["id"]) for c in content if isinstance(c, dict) and "id" in c]
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list):
        ids = [t.partition("token_id:")[2] for t in tokens if isinstance(t, str)]
        return [int(i) for i in ids if i.isdigit()]
    return []


class _TextPieces:
    """Feeds `ReplyText` a streamed chunk's text with its first token (or with a stand-in
    token, where the server sends no ids)."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def piece(self, token: int) -> bytes:
        return self.pending.pop(0) if self.pending else b""
