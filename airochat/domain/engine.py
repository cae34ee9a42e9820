"""The contract between the chat and whatever runs the model: llama-cpp-python in this process
today, servers tomorrow. The chat keeps its history as token ids, so an engine must tokenize,
know its special tokens, turn ids back into bytes, and generate from a list of ids."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from airochat.domain.config import Sampling
from airochat.domain.events import EngineEvent
from airochat.domain.templates import Special


class Engine(Protocol):
    @property
    def n_ctx(self) -> int:
        """Tokens the context holds (prompt and reply together)."""
        ...

    @property
    def eos_id(self) -> int: ...

    @property
    def n_vocab(self) -> int:
        """Token ids run from 0 to n_vocab - 1."""
        ...

    @property
    def max_token_bytes(self) -> int:
        """The most bytes one token stands for: a text of N bytes is at least N / this many
        tokens, which judges a huge message before tokenizing it."""
        ...

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text: special-token spellings in it stay text."""
        ...

    def special_token(self, special: Special) -> list[int]:
        """The ids of a special token (`[]` when the model does not use it, e.g. no BOS)."""
        ...

    def token_text(self, token: int) -> str:
        """A token's text as the model reads it, special tokens spelled out (`</s>`)."""
        ...

    def piece(self, token: int) -> bytes:
        """A token's raw bytes, as the model reads them (a leading space included)."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
        """Stream a reply to `prompt` (the whole history as ids): TextChunks, then one Done.
        `stop` strings end the reply and are not part of it."""
        ...

    @property
    def can_shift(self) -> bool:
        """Whether `drop_cached` can work on this model at all."""
        ...

    def drop_cached(self, start: int, end: int) -> bool:
        """Forget cached positions [start, end) and shift the later ones back, so a prompt
        that no longer holds those tokens still reuses the cache of what follows them. False
        when this engine cannot (it then reads the prompt again)."""
        ...

    def request_stop(self) -> None:
        """Stop the prompt read or the reply as soon as possible (safe in a signal handler)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class KeepsCache(Protocol):
    """An engine whose KV cache can be saved with a session and loaded back (llama.cpp in this
    process), so a resumed chat reads only its new turn."""

    def cache_fingerprint(self) -> dict[str, Any]:
        """What a saved cache must match: model, build, context size, KV type, RoPE."""
        ...

    def cached_tokens(self) -> list[int]: ...

    def cache_state(self) -> bytes: ...

    def restore_cache(self, tokens: Sequence[int], state: bytes) -> bool: ...
