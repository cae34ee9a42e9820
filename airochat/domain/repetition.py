"""A reply that loops on the same text: small models fall into it ("la Femme, la Femme, la
Femme, ...") and would write it to the token limit. `RepetitionGuard` watches the reply as it
streams and says when its end has become one stretch of text repeated over and over, so the
chat can stop it (and say so in the stats line).

The test: the reply's last `span` characters have a period `p` (each character equals the one
`p` before it), where `span` is at least `REPEATS` periods and at least `MIN_SPAN` characters.
A list that counts (`1. 2. 3.`), a table, code with similar lines: none repeats exactly; a
model that loops on a sentence or a line does, within a few repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from airochat.domain.events import Done

MAX_PERIOD = 400  # the longest repeated stretch looked for (a few sentences)
REPEATS = 4  # how many times in a row it must come
MIN_SPAN = 240  # and over how many characters at least (`----` rules, `....` leaders pass)


def looping(text: str) -> bool:
    """Whether `text` ends in one stretch repeated at least REPEATS times (MIN_SPAN chars)."""
    n = len(text)
    if n < MIN_SPAN:
        return False
    for period in range(1, min(MAX_PERIOD, n // REPEATS) + 1):
        span = max(REPEATS * period, MIN_SPAN)
        if span > n:
            break
        tail = text[n - span :]
        if tail[period:] == tail[:-period]:
            return True
    return False


class RepetitionGuard:
    """Watches one reply as it streams: once it loops, the engine is asked to stop, and the
    reply's end is told as `repeated` (not `interrupted`: nobody pressed Ctrl-C)."""

    CHECK_EVERY = 16  # characters between checks

    def __init__(self) -> None:
        self.text = ""
        self._unchecked = 0
        self.tripped = False

    def watch(self, chunk: str, stop: Callable[[], None]) -> None:
        if self.tripped:
            return
        self.text = (self.text + chunk)[-(REPEATS * MAX_PERIOD + MIN_SPAN) :]
        self._unchecked += len(chunk)
        if self._unchecked >= self.CHECK_EVERY:
            self._unchecked = 0
            if looping(self.text):
                self.tripped = True
                stop()

    def done(self, event: Done) -> Done:
        if self.tripped and event.finish_reason == "interrupted":
            return replace(event, finish_reason="repeated")
        return event
