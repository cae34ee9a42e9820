"""The contract between the chat and whatever runs the model (llama-cpp-python in this process,
a llama-server, an OpenAI-compatible server), split by what its callers need:

- `Tokenizer`: what the conversation needs to keep its history as token ids (a template's
  `Tokenizer` from domain/templates.py, plus the bytes of a token and the vocabulary's bounds).
- `Generator`: what the chat needs to get a reply (the context size, `generate`, stop, close,
  dropping cached positions) and what the engine can do, as data (`Capabilities`).
- `Engine`: both, which is what a `Chat` is given.
- `KeepsCache`: an engine whose KV cache is saved with a chat (`Capabilities.keeps_cache`).
- `BenchProbes`: what `bench` measures beside the chat, supplied by the engine's builder where
  the engine has a raw API to compare with (absent otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from airochat.domain.config import Sampling
from airochat.domain.events import EngineEvent
from airochat.domain.templates import Special
from airochat.domain.templates import Tokenizer as TemplateTokenizer


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, said once when it is opened."""

    can_shift: bool = False  # drop_cached can keep the cache of what follows a dropped span
    keeps_cache: bool = False  # its KV cache can be saved with a chat and loaded back
    # The ids are the model's own. False: they are stand-ins (a server without /tokenize,
    # sized by bytes) -- good for measuring the context, never saved: the chat keeps the text.
    exact_token_ids: bool = True


class Dropped(Enum):
    """What `drop_cached` did with the cache of the positions after the dropped span."""

    SHIFTED = "shifted"  # moved back now: the next prompt reuses it
    ON_NEXT_READ = "on the next read"  # the server shifts what it holds when the prompt comes
    NOT_HELD = "not held"  # nothing kept: what stays is read again

    def __bool__(self) -> bool:
        return self is not Dropped.NOT_HELD


class Tokenizer(TemplateTokenizer, Protocol):
    """What the conversation needs: a template's tokenizer (domain/templates.py), the bytes of
    each token, and the bounds of the vocabulary."""

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


class Generator(Protocol):
    @property
    def n_ctx(self) -> int:
        """Tokens the context holds (prompt and reply together)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
        """Stream a reply to `prompt` (the whole history as ids): TextChunks, then one Done.
        `stop` strings end the reply and are not part of it; the reply is at most
        `sampling.max_tokens` tokens whatever the model or server does."""
        ...

    def drop_cached(self, start: int, end: int) -> Dropped:
        """Forget cached positions [start, end) and shift the later ones back, so a prompt
        that no longer holds those tokens still reuses the cache of what follows them."""
        ...

    def request_stop(self) -> None:
        """Stop the prompt read or the reply as soon as possible (safe in a signal handler)."""
        ...

    def close(self) -> None: ...


class Engine(Tokenizer, Generator, Protocol):
    """What a chat runs on."""


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

    def forget_cache(self) -> None:
        """Make the next prompt read from scratch."""
        ...


class BenchProbes(Protocol):
    """What bench needs beyond the chat: a read with nothing cached, and the engine's own
    completion API driven directly (the ceiling a client can reach)."""

    @property
    def threads(self) -> int:
        """The threads the model runs on (0: a server's own business)."""
        ...

    @property
    def load_s(self) -> float:
        """Seconds the model took to load (0: not loaded here)."""
        ...

    def read_cold(self, tokens: Sequence[int]) -> float:
        """Seconds to read `tokens` with nothing cached."""
        ...

    def bare_chat_tps(
        self, turns: list[str], reply_end: str, sampling: Sampling, stop: list[str], n: int
    ) -> float:
        """The scripted chat as one growing text through the raw API: decode tokens/s."""
        ...

    def bare_tps(self, prompt: Sequence[int], sampling: Sampling) -> tuple[int, float]:
        """(tokens, decode tokens/s) continuing `prompt` through the raw API, same seed."""
        ...
