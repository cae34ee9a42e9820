"""When a streamed reply started and got its first and last tokens: every engine measures time
to first token and decode time the same way (the first token's wait belongs to the prompt)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ReplyClock:
    start: float = field(default_factory=time.perf_counter)
    first: float = 0.0
    last: float = 0.0
    received: int = 0  # tokens received so far

    def tick(self, tokens: int = 1) -> None:
        """`tokens` arrived now."""
        self.last = time.perf_counter()
        self.first = self.first or self.last
        self.received += tokens

    @property
    def ttft_s(self) -> float:
        """Seconds to the first token; with none received, the wait so far."""
        return (self.first or time.perf_counter()) - self.start

    @property
    def decode_s(self) -> float:
        """Seconds from the first token to the last."""
        return self.last - self.first

    @property
    def tokens_per_s(self) -> float:
        """Decode speed: the tokens after the first over the time they took."""
        seconds = self.decode_s
        return (self.received - 1) / seconds if self.received > 1 and seconds > 0 else 0.0
