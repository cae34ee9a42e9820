"""An in-process `Engine` for fast tests of the chat, the commands and the REPL loop.

It honours the contract the real engines do: a byte-level tokenizer (token = byte + 3; BOS 1,
EOS 2), a simulated KV cache (only the part of a prompt beyond the longest prefix shared with
the previous one counts as read), stop strings cut through the same `ReplyText` scanner, and
`request_stop()`. Replies come from a script; every call is recorded for assertions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from airochat.domain.config import Sampling
from airochat.domain.engine import Capabilities, Dropped
from airochat.domain.events import Done, EngineEvent, FinishReason, TextChunk
from airochat.domain.stops import ReplyText
from airochat.domain.templates import BOS, EOS, Special

OFFSET = 3


@dataclass
class Call:
    prompt: list[int]
    stop: list[str]
    sampling: Sampling


@dataclass
class ScriptedEngine:
    replies: list[str] = field(default_factory=lambda: ["Hello there."])
    n_ctx: int = 512
    calls: list[Call] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)
    stop_after: int | None = None  # request a stop after this many reply tokens
    closed: bool = False
    _stop: bool = False

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def n_vocab(self) -> int:
        return 256 + OFFSET

    @property
    def max_token_bytes(self) -> int:
        return 1

    def tokenize_text(self, text: str) -> list[int]:
        return [b + OFFSET for b in text.encode("utf-8")]

    def special_token(self, special: Special) -> list[int]:
        if special == BOS:
            return [1]
        if special == EOS:
            return [2]
        return self.tokenize_text(special.name)

    def piece(self, token: int) -> bytes:
        return bytes([token - OFFSET]) if token >= OFFSET else b""

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return {1: "<s>", 2: "</s>"}.get(token) or self.detokenize([token])

    def spell(self, tokens: Sequence[int]) -> str:
        """Tokens as text with EOS spelled `</s>` and BOS left out, as `/prompt` shows them."""
        return "".join("</s>" if t == 2 else "" if t == 1 else self.detokenize([t]) for t in tokens)

    can_shift: bool = True

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(can_shift=self.can_shift)

    def drop_cached(self, start: int, end: int) -> Dropped:
        if not self.can_shift or not 0 <= start < end <= len(self.cached):
            return Dropped.NOT_HELD
        self.cached = self.cached[:start] + self.cached[end:]
        return Dropped.SHIFTED

    def request_stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        self.closed = True

    def generate(
        self, prompt: Sequence[int], sampling: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
        prompt = list(prompt)
        self.calls.append(Call(prompt, list(stop), sampling))
        shared = 0
        for a, b in zip(self.cached, prompt, strict=False):
            if a != b:
                break
            shared += 1
        reply = self.replies[(len(self.calls) - 1) % len(self.replies)]
        run = ReplyText(self, stop)
        finish: FinishReason = "length"
        self._stop = False
        for i, tok in enumerate(self.tokenize_text(reply)):
            if i >= sampling.max_tokens:
                break
            if self._stop or (self.stop_after is not None and i >= self.stop_after):
                finish = "interrupted"
                break
            chunk = run.add(tok)
            if chunk:
                yield TextChunk(chunk)
            if run.stopped:
                finish = "stop"
                break
        else:
            finish = "stop"
        tail = run.flush()
        if tail:
            yield TextChunk(tail)
        self.cached = prompt + run.tokens
        yield Done(
            finish_reason=finish,
            text=run.text,
            tokens=list(run.tokens),
            prompt_tokens=len(prompt),
            prompt_eval_tokens=len(prompt) - shared,
            generated=len(run.tokens),
            stopped_by=run.stopped_by,
        )
