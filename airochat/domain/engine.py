"""The contract between the chat and whatever runs the model: llama-cpp-python in this process
today, servers tomorrow. The chat keeps its history as token ids, so an engine must tokenize,
know its special tokens, turn ids back into bytes, and generate from a list of ids."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

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

    def request_stop(self) -> None:
        """Stop the prompt read or the reply as soon as possible (safe in a signal handler)."""
        ...

    def close(self) -> None: ...
