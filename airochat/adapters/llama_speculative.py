"""Speculative decoding in process: draft tokens verified in one `llama_decode` batch.

The loop replaces llama-cpp-python's `Llama.generate` for a reply (the same sampler chain, the
same prefix reuse of the KV cache, the same record of cached tokens in `input_ids`/`n_tokens`):

1. the prompt is read as `Llama.generate` reads it (only what the cache lacks);
2. the last sampled token and up to k drafted tokens go to llama.cpp in ONE batch, every
   position asking for logits;
3. the target's sampler is run at each position in turn -- over that position's logits only,
   read by llama.cpp itself (`llama_sampler_sample(…, idx)`; nothing is copied into Python,
   never `logits_all` over Gemma's 262k vocabulary) -- and a draft token is kept only while
   it is what the target samples there. The first position where it is not gives the
   target's own token instead, so every token emitted is the one plain decoding would sample
   from the same logits: greedy at temperature 0, the same random draw (the sampler's RNG
   advances once per emitted token, as in plain decoding) above it;
4. the rejected positions are removed from the KV cache (`llama_memory_seq_rm`).

`Llama.n_tokens` always counts only positions whose tokens are the reply's: when the consumer
stops early (a stop string, the token budget, Ctrl-C mid-batch), closing the generator removes
whatever the last batch left beyond them, so the next turn's prefix match sees a true cache.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from airochat.domain.lookup_draft import DraftLength, DraftPlanner, LookupDrafter, SpecCounts

if TYPE_CHECKING:
    from llama_cpp import Llama

K_MAX = 16


class Drafter(Protocol):
    """Where drafts come from: the chat's own tokens (`LookupDrafter`) or a draft model."""

    match: int  # how the last draft was found (the lookup's n-gram length; 0: no draft)

    def reset(self, tokens: Sequence[int]) -> None: ...

    def append(self, token: int) -> None: ...

    def draft(self, k: int) -> list[int]: ...


class LookupSpeculator:
    """Prompt-lookup speculation for one loaded model (`mode` lookup or auto)."""

    def __init__(self, mode: str = "lookup", k_max: int = K_MAX) -> None:
        self.mode = mode
        self.k_max = k_max
        self.last = SpecCounts()  # the reply in progress, or the last one
        self.total = SpecCounts()  # since the model was loaded
        self.planner = DraftPlanner(k_max=k_max)  # auto: kept across replies (timings)

    def describe(self) -> str:
        return f"speculative decoding: {self.mode} (prompt n-gram drafts, up to {self.k_max})"

    def generate(
        self, llm: Llama, prompt: Sequence[int], sampler_args: dict[str, Any], budget: int
    ) -> Generator[int, Any, None]:
        """Tokens of the reply to `prompt`, as `llm.generate(prompt, **sampler_args)` would
        yield them; `budget` bounds how far ahead drafts reach."""
        import llama_cpp

        self.last = SpecCounts()
        sampler = llm._init_sampler(**sampler_args)
        batch = llama_cpp.llama_batch_init(self.k_max + 1, 0, 1)
        verify = _Verifier(llm, batch, self.last)
        try:
            read = _read_prompt(llm, list(prompt))
            verify.decoded_to = llm.n_tokens
            drafter = self._drafter()
            drafter.reset(prompt)
            length = DraftLength(k_max=self.k_max)
            # llama.cpp's perf counters report a 0 as 1 (max(1, n_eval)): what it decoded
            # without error is counted here instead.
            self.last.prompt_read = read
            token = int(sampler.sample(llm._ctx, -1))
            emitted = 0
            while True:
                drafter.append(token)
                emitted += 1
                yield token
                room = min(budget - emitted, verify.n_ctx - llm.n_tokens, self.k_max + 1) - 1
                predicted, draft = self._next_draft(drafter, room, length)
                match = drafter.match
                start = time.perf_counter()
                verify.decode([token, *draft])
                self.planner.timed(len(draft) + 1, time.perf_counter() - start)
                accepted = 0
                for i in range(len(draft) + 1):
                    token = int(sampler.sample(llm._ctx, i))
                    if i == len(draft) or token != draft[i]:
                        break
                    accepted += 1
                    verify.keep(1)  # the draft token at this position is the reply's
                    drafter.append(token)
                    emitted += 1
                    yield token
                verify.drop_rest()
                length.update(len(draft), accepted)
                if draft:
                    self.planner.judged(match, len(draft), accepted)
                else:  # shadow: would the lookup have guessed the token just sampled?
                    hit = bool(predicted) and predicted[0] == token
                    self.planner.judged(match, 1 if predicted else 0, int(hit))
        finally:
            verify.drop_rest()
            llm._requires_eval = True  # the last logits are a batch's, not the last token's
            llama_cpp.llama_batch_free(batch)
            sampler.close()
            self.total.drafted += self.last.drafted
            self.total.accepted += self.last.accepted
            self.total.batches += self.last.batches
            self.total.decoded += self.last.decoded

    def _drafter(self) -> Drafter:
        return LookupDrafter()

    def _next_draft(
        self, drafter: Drafter, room: int, length: DraftLength
    ) -> tuple[list[int], list[int]]:
        """(what the lookup predicts, what of it is verified): lookup verifies as many as the
        adaptive length says; auto as many as pay for themselves by the planner's measure
        (often none)."""
        predicted = drafter.draft(room) if room > 0 else []
        if self.mode == "auto":
            return predicted, predicted[: self.planner.plan(drafter.match, len(predicted))]
        return predicted, predicted[: length.next()]

    def dropped(self, start: int, end: int) -> None:
        """The target's cache dropped positions [start, end) and shifted the rest back."""

    def request_stop(self) -> None:
        """Stop what the speculator reads beyond the target (a draft model catching up with a
        long prompt); safe in a signal handler."""

    def close(self) -> None:
        """Free what the speculator holds beyond the target (a draft model)."""


class _Verifier:
    """One llama_batch reused for every verification, and the cache bookkeeping around it."""

    def __init__(self, llm: Llama, batch: Any, counts: SpecCounts) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llm = llm
        self.batch = batch
        self.counts = counts
        self.ctx = llm._ctx.ctx
        self.n_ctx = min(int(llm.n_ctx()), len(llm.input_ids))
        self.decoded_to = llm.n_tokens  # positions llama.cpp holds (valid or not)

    def decode(self, tokens: list[int]) -> None:
        """Decode `tokens` at the next positions, logits at each; only the first is known to
        be the reply's (the sampled token): n_tokens counts it, the drafts wait for keep()."""
        llm, b = self.llm, self.batch
        n0 = llm.n_tokens
        fill_batch(b, tokens, n0, every_logit=True)
        self.decoded_to = n0 + len(tokens)
        rc = self._lib.llama_decode(self.ctx, b)
        self._lib.llama_synchronize(self.ctx)
        if rc != 0:
            self.decoded_to = max(n0, self.decoded_to)
            raise RuntimeError(f"llama_decode returned {rc}")
        llm.input_ids[n0 : n0 + len(tokens)] = tokens
        llm.n_tokens = n0 + 1
        self.counts.decoded += len(tokens)
        if len(tokens) > 1:
            self.counts.drafted += len(tokens) - 1
            self.counts.batches += 1

    def keep(self, n: int) -> None:
        self.llm.n_tokens += n
        self.counts.accepted += n

    def drop_rest(self) -> None:
        """Forget the positions decoded past the reply's tokens (rejected drafts)."""
        n = self.llm.n_tokens
        if self.decoded_to > n:
            mem = self._lib.llama_get_memory(self.ctx)
            self.decoded_to = n
            if not self._lib.llama_memory_seq_rm(mem, 0, n, -1):
                raise RuntimeError("the model's cache cannot forget rejected draft tokens")


def fill_batch(batch: Any, tokens: list[int], start: int, every_logit: bool) -> None:
    """`tokens` at positions start, start+1, ... of sequence 0 in a llama_batch; logits at
    every position (a verification) or only at the last (reading ahead)."""
    batch.n_tokens = len(tokens)
    last = len(tokens) - 1
    for i, t in enumerate(tokens):
        batch.token[i] = t
        batch.pos[i] = start + i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = int(every_logit or i == last)


def _read_prompt(llm: Llama, tokens: list[int]) -> int:
    """Read what the cache lacks of `tokens`, as Llama.generate does: the longest cached
    prefix is kept, and at least the last token is read again so its logits are fresh."""
    n = llm.n_tokens
    prefix = 0
    for a, b in zip(llm.input_ids[:n], tokens, strict=False):
        if a != b:
            break
        prefix += 1
    reuse = prefix - 1 if prefix == len(tokens) else prefix
    if reuse > 0 and llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
        llm.n_tokens = reuse
    else:
        llm.reset()  # type: ignore[no-untyped-call]
        reuse = 0
    llm.eval(tokens[reuse:])
    return len(tokens) - reuse


def top2_gap(llm: Llama, tokens: Sequence[int]) -> float:
    """The target's logit gap between its first and second choice after `tokens`, read cold
    (how near a tie the token where two decodings parted was)."""
    import llama_cpp
    import numpy as np

    llm.reset()  # type: ignore[no-untyped-call]
    llm.eval(list(tokens))
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    logits = np.ctypeslib.as_array(ptr, shape=(int(llm.n_vocab()),))
    second, first = np.partition(logits, -2)[-2:]
    return float(first - second)


def speculator_for(mode: str) -> LookupSpeculator | None:
    """The in-process speculator for a --speculate mode (off: none)."""
    if mode in ("lookup", "auto"):
        return LookupSpeculator(mode)
    return None
