"""--speculate draft:MODEL in process: a second, smaller model of the same vocabulary drafts
greedily; the target verifies the drafts in one batch (adapters/llama_speculative.py).

The draft model keeps its own KV cache in step with the chat, the way the target does:

- before each draft, its cache is matched against the chat's tokens so far: the longest common
  prefix stays, the rest (drafts the target refused, an older turn) is removed, and only what
  it lacks is read -- the turn's new prompt tokens and the tokens the target emitted;
- when the target drops old positions and shifts the rest back (the chat outgrew the context),
  the draft's cache is shifted the same way (`dropped`), so it does not re-read the chat.

Drafting k tokens costs k single-token decodes of the draft model (the last drafted token is
read only if the target keeps it). Its logits are read by llama.cpp's greedy sampler, never
copied into Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airochat.adapters.llama_speculative import K_MAX, Drafter, LookupSpeculator, fill_batch
from airochat.domain.lookup_draft import DraftLength

if TYPE_CHECKING:
    from airochat.adapters.llama_engine import LlamaEngine


class ModelDrafter:
    """Greedy drafts from the draft model; its cache follows the chat's tokens."""

    def __init__(self, engine: LlamaEngine) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.engine = engine
        self.ctx = engine.llama._ctx.ctx
        self.n_batch = int(engine.llama.n_batch)  # the most one llama_decode takes
        self.n_ctx = engine.n_ctx
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._greedy = llama_cpp.llama_sampler_init_greedy()
        self.tokens: list[int] = []  # the chat's tokens so far (prompt and reply)
        self.cached: list[int] = []  # what the draft's cache holds, by position
        self.match = 0
        self.read = 0  # tokens the draft model decoded (prompt and drafts), for the tests

    def reset(self, tokens: Sequence[int]) -> None:
        self.tokens = list(tokens)
        self.engine.clear_stop()  # a new reply: a stop asked during the last one is done

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def draft(self, k: int) -> list[int]:
        """Up to `k` tokens the draft model would say next (fewer at its end of generation)."""
        self.match = 0
        k = min(k, self.n_ctx - len(self.tokens))
        if k <= 0:
            return []
        self._catch_up()
        out: list[int] = []
        while True:
            token = int(self._lib.llama_sampler_sample(self._greedy, self.ctx, -1))
            out.append(token)
            if len(out) >= k or self.engine.is_eog(token):
                break
            self._decode([token])
        self.match = 1
        return out

    def _catch_up(self) -> None:
        """Make the cache hold exactly `tokens`, the last one read again for fresh logits."""
        keep = 0
        for a, b in zip(self.cached, self.tokens, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(self.tokens) - 1)
        if keep < len(self.cached):
            mem = self._lib.llama_get_memory(self.ctx)
            if not self._lib.llama_memory_seq_rm(mem, 0, keep, -1):
                self._lib.llama_memory_clear(mem, True)
                keep = 0
            del self.cached[keep:]
        rest = self.tokens[keep:]
        if len(rest) <= 1:
            self._decode(rest)
            return
        with self.engine.abortable():  # Ctrl-C stops a long read mid-chunk, as the target's
            for i in range(0, len(rest), self.n_batch):
                self._decode(rest[i : i + self.n_batch])

    def _decode(self, tokens: list[int]) -> None:
        """Read `tokens` at the next positions, logits for the last one only."""
        fill_batch(self._batch, tokens, len(self.cached), every_logit=False)
        rc = self._lib.llama_decode(self.ctx, self._batch)
        if rc != 0:
            # Stopped (2) or failed: what part of the batch llama.cpp kept is not known.
            mem = self._lib.llama_get_memory(self.ctx)
            if not self._lib.llama_memory_seq_rm(mem, 0, len(self.cached), -1):
                self._lib.llama_memory_clear(mem, True)
                self.cached.clear()
            raise RuntimeError(f"the draft model's llama_decode returned {rc}")
        self.cached.extend(tokens)
        self.read += len(tokens)

    def dropped(self, start: int, end: int) -> None:
        """The target forgot positions [start, end) and moved the later ones back: the same
        here, or (a cache that cannot shift, or holds less) forget from `start` on."""
        mem = self._lib.llama_get_memory(self.ctx)
        shifts = end <= len(self.cached) and self._lib.llama_memory_can_shift(mem)
        if shifts and self._lib.llama_memory_seq_rm(mem, 0, start, end):
            self._lib.llama_memory_seq_add(mem, 0, end, -1, start - end)
            del self.cached[start:end]
            return
        if not self._lib.llama_memory_seq_rm(mem, 0, start, -1):
            self._lib.llama_memory_clear(mem, True)
            start = 0
        del self.cached[start:]

    def close(self) -> None:
        self._lib.llama_sampler_free(self._greedy)
        self._lib.llama_batch_free(self._batch)
        self.engine.close()


class DraftSpeculator(LookupSpeculator):
    """Speculation with a draft model: as many drafts as the adaptive length says (longer
    while the target keeps them all, back to what it kept when it refuses one)."""

    def __init__(self, draft: LlamaEngine, name: str, k_max: int = K_MAX) -> None:
        super().__init__(f"draft:{name}", k_max)
        self.name = name
        self.drafter = ModelDrafter(draft)  # one for the chat: it keeps its cache

    def describe(self) -> str:
        return f"speculative decoding: draft model {self.name} (greedy drafts, up to {self.k_max})"

    def _drafter(self) -> Drafter:
        return self.drafter

    def _next_draft(
        self, drafter: Drafter, room: int, length: DraftLength
    ) -> tuple[list[int], list[int]]:
        draft = drafter.draft(min(room, length.next())) if room > 0 else []
        return draft, draft

    def dropped(self, start: int, end: int) -> None:
        self.drafter.dropped(start, end)

    def request_stop(self) -> None:
        self.drafter.engine.request_stop()

    def close(self) -> None:
        self.drafter.close()
