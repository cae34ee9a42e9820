"""What flows from an engine through the chat to whoever shows it: one closed union of events.

Engines yield `TextChunk`s then one `Done`; the chat adds `Notice` (before or during a reply:
old exchanges dropped, say) and `ReplyNote` (after it: a scene line cut). Consumers `match` on
these four and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# stop: EOS or a stop string; length: the token limit; interrupted: Ctrl-C or request_stop();
# repeated: the chat stopped a reply looping on the same text (domain/repetition.py).
FinishReason = Literal["stop", "length", "interrupted", "repeated"]


@dataclass(frozen=True)
class TextChunk:
    """Reply text that can no longer change (stop strings already ruled out)."""

    text: str


@dataclass(frozen=True)
class Done:
    """The end of a reply, with what the engine measured of it."""

    finish_reason: FinishReason
    text: str
    tokens: list[int] = field(default_factory=list)
    prompt_tokens: int = 0  # the whole prompt, history included
    prompt_eval_tokens: int = 0  # what the engine actually read this turn (its own counters)
    ttft_s: float = 0.0
    decode_s: float = 0.0
    generated: int = 0
    stopped_by: str = ""  # the stop string that ended the reply, if one did
    drafted: int = 0  # speculative decoding: draft tokens verified, and those kept
    accepted: int = 0

    @property
    def tokens_per_s(self) -> float:
        # The first token's time belongs to the prompt read; decode speed is over the rest.
        return (self.generated - 1) / self.decode_s if self.generated > 1 and self.decode_s else 0.0


@dataclass(frozen=True)
class Notice:
    """Something the user should know about this turn, said before the reply."""

    text: str


@dataclass(frozen=True)
class ReplyNote:
    """Something about the finished reply worth a dim line after it (a scene line cut)."""

    text: str


EngineEvent = TextChunk | Done
ChatEvent = TextChunk | Done | Notice | ReplyNote
