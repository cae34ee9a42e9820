"""OpenAI-compatible servers (vLLM, LM Studio, Ollama's /v1, llama-cpp-python's and llama.cpp's
servers) as an `Engine`.

Only `POST /v1/completions` is used -- never the chat endpoint -- so the prompt is airochat's
own, byte for byte. Where the server tokenizes (vLLM's and llama.cpp's `/tokenize`), prompts go
as token ids and the history stays token-exact; elsewhere the prompt goes as text and a byte
count stands in for tokens (said once). Stop strings are sent, and enforced here as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from airochat.adapters.http_engine import (
    OFFSET,
    ByteDialect,
    Chunk,
    Dialect,
    HttpEngine,
    LlamaCppDialect,
    Reply,
    VllmDialect,
    count,
)
from airochat.adapters.server_http import (
    DEFAULT_TIMEOUT_S,
    ServerError,
    ServerGone,
    ServerUnreachable,
    answer_object,
    request,
    sniff,
)
from airochat.domain.config import Sampling
from airochat.domain.engine import Capabilities, Dropped
from airochat.domain.events import EngineEvent, FinishReason
from airochat.domain.templates import BOS, EOS, Special

BYTES_PER_TOKEN = 3  # text mode: a conservative guess to size the context in bytes


def _dialect(http: Any, model: str) -> Dialect:
    """The server's own tokenizer, found by trying the two shapes of `/tokenize` in use;
    bytes when it has neither."""
    for dialect in (VllmDialect(http, model), LlamaCppDialect(http)):
        try:
            if dialect.tokenize("a"):  # a server that ignored the fields answers no tokens
                return dialect
        except ServerUnreachable:
            raise
        except ServerError:
            continue
    return ByteDialect()


class OpenAIEngine(HttpEngine):
    def __init__(
        self,
        url: str,
        model: str | None,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        sniff(url)
        super().__init__(url, api_key, timeout_s)
        self.model, self._n_ctx = self._model(model)
        self.dialect = _dialect(self.http, self.model)
        self.token_mode = self.dialect.exact
        self.notes: list[str] = []
        self._bos = self._bos_ids() if self.token_mode else [1]
        self._eos = self._eos_ids()
        if not self.token_mode:
            self._n_ctx *= BYTES_PER_TOKEN
            self.notes.append(
                "this server has no /tokenize: prompts go as text and the context is sized "
                f"by bytes ({BYTES_PER_TOKEN} per token)"
            )

    def _model(self, wanted: str | None) -> tuple[str, int]:
        data = request(self.http, "GET", "/v1/models", "listing the server's models")
        listed = answer_object(data, "listing the server's models").get("data", [])
        if not isinstance(listed, list):
            raise ServerError(f"{self.url}: /v1/models does not list models")
        models = [m for m in listed if isinstance(m, dict) and "id" in m]
        if not models:
            raise ServerError(f"{self.url} serves no model (/v1/models is empty)")
        ids = [str(m["id"]) for m in models]
        if wanted is None and len(models) > 1:
            raise ServerError(f"{self.url} serves {len(ids)} models; name one: {', '.join(ids)}")
        chosen = next((m for m in models if wanted in (None, m["id"])), None)
        if chosen is None:
            raise ServerError(f"{self.url} does not serve {wanted!r}; it serves {', '.join(ids)}")
        meta = chosen.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        n_ctx = count(chosen.get("max_model_len") or meta.get("n_ctx") or 4096, "context size")
        return str(chosen["id"]), max(n_ctx, 1)

    def _bos_ids(self) -> list[int]:
        """What the model puts before a prompt (its BOS), found by asking for it."""
        plain = self.dialect.tokenize("a")
        added = self.dialect.tokenize("a", add_special=True)
        return added[: len(added) - len(plain)] if added[-len(plain) :] == plain else []

    def _eos_ids(self) -> list[int]:
        """The model's end-of-sequence token, which closes every reply in the history: its
        text from llama.cpp's /props where there is one, else the Llama family's `</s>`."""
        if not self.token_mode:
            return [2]
        try:
            props = request(self.http, "GET", "/props", "reading /props")
            eos = props.get("eos_token") if isinstance(props, dict) else None
            text = eos if isinstance(eos, str) and eos else "</s>"
        except ServerUnreachable:
            raise
        except ServerError:
            text = "</s>"
        ids = self.dialect.tokenize(text, special=True)
        if len(ids) != 1:
            self.notes.append(f"cannot tell this model's end-of-sequence token; using {text!r}")
        return ids

    # -- tokens ----------------------------------------------------------------------------------

    def special_token(self, special: Special) -> list[int]:
        if special == BOS:
            return list(self._bos)
        if special == EOS:
            return list(self._eos)
        if not self.token_mode:
            return self.tokenize_text(special.name)
        ids = self.dialect.tokenize(special.name, special=True)
        return ids if len(ids) == 1 else self.tokenize_text(special.name)

    def token_text(self, token: int) -> str:
        if not self.token_mode:
            return self.dialect.detokenize([token])
        return super().token_text(token)

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def eos_id(self) -> int:
        return self._eos[0] if len(self._eos) == 1 else -1

    @property
    def n_vocab(self) -> int:
        return 1 << 31 if self.token_mode else 256 + OFFSET  # the server's ids, else bytes

    @property
    def capabilities(self) -> Capabilities:
        # Prefix caching only: what stays after a drop is read again. Without /tokenize the
        # ids are bytes, stand-ins that size the context: the chat keeps the text instead.
        return Capabilities(can_shift=False, keeps_cache=False, exact_token_ids=self.token_mode)

    def drop_cached(self, start: int, end: int) -> Dropped:
        return Dropped.NOT_HELD

    # -- generation ------------------------------------------------------------------------------

    def _prompt(self, prompt: Sequence[int]) -> list[int] | str:
        if self.token_mode:
            return list(prompt)
        return self.dialect.detokenize(prompt)

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
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
        reply = Reply(self, stop, sampling.max_tokens)
        yield from self._read("/v1/completions", body, reply, _chunk)
        _check_whole(reply)
        text = reply.text
        tokens = list(text.tokens) if reply.exact else self.tokenize_text(text.text)
        usage = reply.meta.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        read = len(prompt) - cached if isinstance(cached, int) and cached >= 0 else -1
        generated = usage.get("completion_tokens")
        made = generated if isinstance(generated, int) and generated >= 0 else 0
        yield reply.done(tokens, len(prompt), read, made)


def _check_whole(reply: Reply) -> None:
    """A stream the server ended by itself must have held a completion and said it was
    over; else the turn is dropped in one line (an empty reply would be saved)."""
    if reply.cut:
        return
    if not reply.answered:
        raise ServerError(
            "the server's /v1/completions stream held no completion (no choices[].text in any "
            "event); nothing is kept of this turn"
        )
    if not reply.ended:
        raise ServerGone(
            "the server's stream stopped before the reply ended (no finish_reason, no [DONE]); "
            "this turn is dropped, the chat is as it was before it"
        )


def _chunk(event: dict[str, Any]) -> Chunk:
    """One /v1/completions event: its text, the ids it carries, how the reply ends."""
    meta = {"usage": event["usage"]} if isinstance(event.get("usage"), dict) else {}
    choices = event.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise ServerError("the server's reply is not a completion stream (choices is not a list)")
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    if "text" not in choice and ("delta" in choice or "message" in choice):
        raise ServerError(
            "the server answered /v1/completions in the chat shape (choices[].delta, no text "
            "field): not a completion stream; nothing is kept of this turn"
        )
    text = choice.get("text")
    data = text.encode("utf-8", "replace") if isinstance(text, str) else b""
    ids = _token_ids(choice.get("logprobs"))
    reason = choice.get("finish_reason")
    finish: FinishReason | None = "stop" if reason == "stop" else None
    ended = isinstance(reason, str) and bool(reason)
    answered = isinstance(text, str)
    return Chunk(ids or None if data or ids else [], data, finish, meta, ended, answered)


def _token_ids(logprobs: Any) -> list[int]:
    """The generated token ids a chunk carries: llama.cpp's `logprobs.content[].id`, or
    vLLM's `logprobs.tokens` as "token_id:N" (with return_tokens_as_token_ids); [] when
    they are missing or any is not a token id."""
    if not isinstance(logprobs, dict):
        return []
    content = logprobs.get("content")
    if isinstance(content, list):
        ids = [c.get("id") if isinstance(c, dict) else None for c in content]
        good = all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)
        return [int(i) for i in ids if isinstance(i, int)] if good else []
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list):
        found = [t.partition("token_id:")[2] if isinstance(t, str) else "" for t in tokens]
        return [int(i) for i in found] if all(i.isdigit() for i in found) else []
    return []
