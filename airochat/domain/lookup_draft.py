"""Drafts for speculative decoding from the chat's own tokens: prompt n-gram lookup.

A reply that quotes its document, rewrites given code or repeats a name continues the way an
earlier stretch of the chat continued. `LookupDrafter` indexes every n-gram of the token
history (n from `max_ngram` down to `min_ngram`) by where its most recent occurrence was
followed, and proposes the tokens that followed the longest n-gram matching the history's end.
While the reply keeps copying one stretch, the next draft continues that stretch (`_src`) rather
than looking its last n-gram up again: a quoted paragraph or a rewritten function goes on the way
its source does, where the most recent occurrence of the n-gram may be another place.
`DraftLength` adapts how many tokens to propose from how many were accepted; in `auto` mode it
also stops drafting for a while when drafts stop being accepted, so a chat that does not repeat
itself pays (almost) nothing.

Pure Python: the verification against the model is the adapter's (adapters/llama_speculative.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SPECULATE_MODES = ("off", "lookup", "auto")  # and draft:MODEL


def check_mode(mode: str) -> str | None:
    """Why `mode` is not a --speculate value, or None when it is."""
    if mode in SPECULATE_MODES:
        return None
    if mode.startswith("draft:") and mode.removeprefix("draft:"):
        return None
    return f"--speculate is off, lookup, auto or draft:MODEL, not {mode!r}"


class LookupDrafter:
    """The n-gram index of one token history, extended as the reply grows."""

    def __init__(self, max_ngram: int = 4, min_ngram: int = 2) -> None:
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram
        self.tokens: list[int] = []
        self.match = 0  # the n-gram length the last draft came from (0: none)
        self._src: int | None = None  # where the stretch being copied continues
        # n -> {n-gram: the index of the token that followed its latest occurrence}
        self._index: dict[int, dict[tuple[int, ...], int]] = {
            n: {} for n in range(min_ngram, max_ngram + 1)
        }

    def reset(self, tokens: Sequence[int]) -> None:
        self.tokens = []
        self._src = None
        for table in self._index.values():
            table.clear()
        self.extend(tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        toks = self.tokens
        end = len(toks)  # `token` goes here: it follows the n-grams that end just before
        src = self._src
        self._src = src + 1 if src is not None and toks[src] == token else None
        for n, table in self._index.items():
            if end >= n:
                table[tuple(toks[end - n : end])] = end
        toks.append(token)

    def draft(self, k: int) -> list[int]:
        """Up to `k` tokens that followed the longest earlier match of the history's end."""
        toks = self.tokens
        self.match = 0
        if k <= 0:
            return []
        if self._src is not None:  # still copying: what follows in the source
            self.match = self.max_ngram
            return toks[self._src : self._src + k]
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(toks) < n:
                continue
            start = self._index[n].get(tuple(toks[-n:]))
            if start is not None:
                self.match = n
                self._src = start
                return toks[start : start + k]
        return []


@dataclass
class DraftLength:
    """How many tokens to draft next: longer while drafts are accepted in full, back to what
    was accepted when one is not. With `backoff`, a run of poorly accepted drafts pauses
    drafting for `pause` tokens (doubling each time it happens again, up to 256)."""

    k_min: int = 1
    k_max: int = 16
    k: int = 4
    backoff: bool = False
    pause: int = 16
    _paused: int = 0
    _window: list[tuple[int, int]] = field(default_factory=list)

    def next(self) -> int:
        if self._paused > 0:
            self._paused -= 1
            return 0
        return self.k

    def update(self, drafted: int, accepted: int) -> None:
        if drafted <= 0:
            return
        if accepted >= drafted:
            self.k = min(self.k_max, self.k * 2)
        else:
            self.k = max(self.k_min, accepted + 1)
        if not self.backoff:
            return
        self._window.append((drafted, accepted))
        self._window = self._window[-4:]
        offered = sum(d for d, _ in self._window)
        kept = sum(a for _, a in self._window)
        if len(self._window) >= 3 and kept * 4 < offered:  # under a quarter accepted
            self._paused = self.pause
            self.pause = min(256, self.pause * 2)
            self._window.clear()
        elif kept * 2 >= offered:
            self.pause = 16


# Before two batch sizes have been timed, each token past the first in a batch is assumed to
# cost a fifth of a single-token decode. Optimistic on purpose, so `auto` tries a draft and then
# plans from this machine's own timings: a 2-core EPYC measured 0.72 of one token for the second
# and 0.46 for each after it (SmolLM2 Q4_1), a 2-core AMX Xeon 0.24 and 0.26, Gemma 270M 0.07
# and 0.14. The pessimistic prior before (0.8 for the second token, 0.33 after) kept the planner
# from ever timing the sizes that would have paid.
PRIOR_SLOPE = 0.2


def _through(points: list[tuple[int, float]], n: int) -> float:
    """The time of a batch of n on the line through the measured sizes nearest to it."""
    below = [pt for pt in points if pt[0] <= n]
    above = [pt for pt in points if pt[0] >= n]
    if below and above:
        (a, ca), (b, cb) = below[-1], above[0]
        return ca if a == b else ca + (cb - ca) * (n - a) / (b - a)
    (a, ca), (b, cb) = points[-2:] if below else points[:2]
    return ca + max((cb - ca) / (b - a), 0.0) * (n - a)


@dataclass
class DraftPlanner:
    """`auto`'s choice of how many drafted tokens to verify: the k that maximises expected
    tokens per second of decode time, or none when plain decoding is faster.

    The time of a batch of n is measured as the reply goes (a moving average per n); a size
    not yet seen is read off the line through the sizes that were (`PRIOR_SLOPE` until two
    were). The chance that the next draft token is accepted is a moving average per (length
    of the n-gram match, how many tokens in a row the lookup has predicted): a reply that is
    copying a stretch of the chat drafts long, one that is not drafts nothing. The lookup's
    prediction is checked against every token the model emits, drafted or not (`shadow`), so
    the estimate stays current at no cost while nothing is drafted."""

    k_max: int = 16
    alpha: float = 0.3
    margin: float = 1.05  # a draft must promise this much more speed: timing noise
    cost: dict[int, float] = field(default_factory=dict)  # seconds per decode of n tokens
    p: dict[tuple[int, int], float] = field(default_factory=dict)
    streak: int = 0  # emitted tokens in a row that the lookup predicted

    def seconds(self, n: int) -> float:
        if n in self.cost:
            return self.cost[n]
        batches = sorted((m, c) for m, c in self.cost.items() if m >= 2)
        if len(batches) >= 2:
            return _through(batches, n)
        one = self.cost.get(1)
        if batches:
            m, c = batches[0]
            step = (one if one is not None else c / (1 + PRIOR_SLOPE * (m - 1))) * PRIOR_SLOPE
            return max(c + step * (n - m), one or 0.0)
        return (one if one is not None else 1.0) * (1 + PRIOR_SLOPE * (n - 1))

    def _key(self, match: int) -> tuple[int, int]:
        return (min(match, 4), min(self.streak, 4))

    def plan(self, match: int, available: int) -> int:
        """How many of `available` drafted tokens to verify (0: decode one plainly)."""
        if match <= 0 or available <= 0:
            return 0
        p = self.p.get(self._key(match), 0.5)
        best_k, best = 0, 0.0
        for k in range(1, min(available, self.k_max) + 1):
            expected = (1 - p ** (k + 1)) / (1 - p)
            rate = expected / self.seconds(k + 1)
            if rate > best:
                best_k, best = k, rate
        return best_k if best > self.margin / self.seconds(1) else 0

    def timed(self, n: int, seconds: float) -> None:
        seconds = max(seconds, 1e-6)  # a clock that did not move must not divide by zero
        old = self.cost.get(n)
        self.cost[n] = seconds if old is None else old + self.alpha * (seconds - old)

    def judged(self, match: int, drafted: int, accepted: int) -> None:
        """After a verified draft (or a shadow one of 1): each accepted token is a hit, the
        first refused one a miss."""
        if drafted <= 0 or match <= 0:  # nothing predicted: a stretch of copying ended
            self.streak = 0
            return
        key = self._key(match)
        p = self.p.get(key, 0.5)
        for i in range(min(drafted, accepted + 1)):
            p += 0.2 * ((1.0 if i < accepted else 0.0) - p)
        self.p[key] = min(p, 0.98)
        self.streak = self.streak + accepted if accepted >= drafted else 0


@dataclass
class SpecCounts:
    """Draft tokens proposed and accepted over one reply (or a whole chat)."""

    drafted: int = 0
    accepted: int = 0
    batches: int = 0
    decoded: int = 0  # tokens the verification batches fed to llama.cpp (drafts included)
    prompt_read: int = -1  # prompt tokens llama.cpp counted reading this turn (-1: not yet)

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0
