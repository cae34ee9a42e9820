"""A reply's text as tokens arrive: UTF-8 reassembled across tokens, stop strings held back
until ruled out, and cut together with their tokens when they appear."""

from __future__ import annotations

import bisect
import codecs
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Pieces(Protocol):
    """What the scanner needs of an engine: the bytes of a token."""

    def piece(self, token: int) -> bytes: ...


@dataclass
class ReplyText:
    """Turns generated tokens into text, holding back anything that may begin a stop string.

    When a stop string appears, the reply keeps only the tokens wholly before it: the text and
    the token ids stay the same thing, and the stop text never enters the history."""

    engine: Pieces
    stop: Sequence[str]
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    stopped: bool = False
    stopped_by: str = ""
    _ends: list[int] = field(default_factory=list)  # text length after each token
    _decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def add(self, token: int) -> str:
        """One generated token; the text that can no longer change."""
        return self.add_chunk((token,), self.engine.piece(token))

    def add_chunk(self, tokens: Sequence[int], data: bytes) -> str:
        """Tokens and the bytes they stand for together (a server streams them so): the bytes
        go with the first of them, so a stop string inside the chunk cuts the whole chunk."""
        for i, token in enumerate(tokens):
            self.tokens.append(token)
            if i == 0:
                self.text += self._decoder.decode(data)
            self._ends.append(len(self.text))
        if self.stop:
            cut = self._find_stop()
            if cut is not None:
                self._truncate(cut)
                self.stopped = True
                return self._emit(len(self.text))
            return self._emit(self._token_start(len(self.text) - self._held_back()))
        return self._emit(len(self.text))

    def _at_start(self) -> str | None:
        """The reply starts a line: while it is short, a stop string that begins with a newline
        also matches at its very start (after a tokenizer's leading space). Only checked while
        the reply is short, so the token loop stays linear."""
        if len(self.text) > self._start_window:
            return None
        body = self.text.lstrip(" ")
        for s in self.stop:
            if s.startswith("\n") and body.startswith(s[1:]):
                return s
        return None

    def _find_stop(self) -> int | None:
        """Where the earliest stop string begins, or None."""
        if (s := self._at_start()) is not None:
            self.stopped_by = s
            return 0
        window = self._start_window
        start = max(0, self.emitted - window)
        best: tuple[int, str] | None = None
        for s in self.stop:
            i = self.text.find(s, start)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        if best is None:
            return None
        self.stopped_by = best[1]
        return best[0]

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a prefix of some stop string."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        if len(self.text) <= self._start_window:  # the whole short reply may begin a stop
            body = self.text.lstrip(" ")
            if body and any(s.startswith("\n") and s[1:].startswith(body) for s in self.stop):
                best = len(self.text)
        return best

    @property
    def _start_window(self) -> int:
        return max((len(s) for s in self.stop), default=0) + 8

    def _token_start(self, index: int) -> int:
        """Where the token holding text position `index` begins: a token that may be cut
        with a stop string is held back whole, so the screen never shows what is dropped."""
        i = bisect.bisect_right(self._ends, index)  # the first token ending past `index`
        if i == len(self._ends):
            return index
        return self._ends[i - 1] if i else 0

    def _truncate(self, cut: int) -> None:
        keep = 0
        while keep < len(self._ends) and self._ends[keep] <= cut:
            keep += 1
        self.tokens = self.tokens[:keep]
        self._ends = self._ends[:keep]
        self.text = self.text[: self._ends[-1]] if self._ends else ""

    def _emit(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        out = self.text[self.emitted : upto]
        self.emitted = upto
        return out

    def flush(self) -> str:
        return self._emit(len(self.text))
