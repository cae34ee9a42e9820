"""Why speculation gains what it gains: bench --scenario's replies replayed without timing noise.

1. Measures the decode time of a batch of n tokens (every position with logits, as the
   verifier asks) after a 600-token prompt: the cost of verifying n - 1 drafts.
2. Plays each scenario plainly (temperature 0, 200 reply tokens) for its prompts and replies.
3. Replays the speculation loop of adapters/llama_speculative.py on those replies with the
   measured costs: `lookup`, `auto`, and an oracle that verifies exactly the drafts that will
   be accepted (the most any policy drafting from the same lookup could gain).

    /work/bin/cpu-exclusive .venv/bin/python benchmarks/spec_replay.py smollm2 [--save F.json]
    .venv/bin/python benchmarks/spec_replay.py --load F.json   # replay only, no model

`--save` keeps the measured costs, prompts and replies, so a change to the planner can be
replayed on the same replies in a second, without loading the model.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from airochat.domain.bench_texts import HARBOUR, SCENARIOS
from airochat.domain.config import Settings
from airochat.domain.engine_spec import LocalEngine
from airochat.domain.lookup_draft import DraftLength, DraftPlanner, LookupDrafter
from airochat.services import spec_bench
from airochat.services.launch import ChatRequest, open_chat

SIZES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)


def batch_costs(engine: object) -> dict[int, float]:
    """Median seconds of one llama_decode of n tokens, logits at every position."""
    import llama_cpp

    llm = engine.llama  # type: ignore[attr-defined]
    prompt = engine.tokenize_text(HARBOUR)[:600]  # type: ignore[attr-defined]
    engine.forget_cache()  # type: ignore[attr-defined]
    llm.eval(prompt)
    ctx, n0 = llm._ctx.ctx, len(prompt)
    mem = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(32, 0, 1)
    out = {}
    for n in SIZES:
        times = []
        for _ in range(9):
            batch.n_tokens = n
            for i in range(n):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = prompt[i], n0 + i, 1
                batch.seq_id[i][0], batch.logits[i] = 0, 1
            start = time.perf_counter()
            llama_cpp.llama_decode(ctx, batch)
            llama_cpp.llama_synchronize(ctx)
            times.append(time.perf_counter() - start)
            llama_cpp.llama_memory_seq_rm(mem, 0, n0, -1)
        out[n] = statistics.median(times)
    llama_cpp.llama_batch_free(batch)
    engine.forget_cache()  # type: ignore[attr-defined]
    return out


def replay(prompt: list[int], reply: list[int], mode: str, cost: Callable[[int], float],
           planner: DraftPlanner, k_max: int = 16) -> tuple[float, int, int]:  # fmt: skip
    """(decode seconds, drafted, accepted) of the loop on a reply known in advance."""
    drafter, length = LookupDrafter(), DraftLength(k_max=k_max)
    drafter.reset(prompt)
    seconds, drafted, accepted, i, token = 0.0, 0, 0, 1, reply[0]
    while True:
        drafter.append(token)
        if i >= len(reply):
            return seconds, drafted, accepted
        room = min(len(reply) - i, k_max + 1) - 1
        predicted, match = drafter.draft(room), drafter.match
        kept = 0
        while kept < len(predicted) and predicted[kept] == reply[i + kept]:
            kept += 1
        if mode == "auto":
            draft = predicted[: planner.plan(match, len(predicted))]
        elif mode == "oracle":
            draft = predicted[:kept]
        else:
            draft = predicted[: length.next()]
        took = cost(len(draft) + 1)
        seconds += took
        planner.timed(len(draft) + 1, took)
        got = min(kept, len(draft))
        drafter.extend(reply[i : i + got])
        drafted, accepted, i = drafted + len(draft), accepted + got, i + got
        if i >= len(reply):
            return seconds, drafted, accepted
        token, i = reply[i], i + 1
        length.update(len(draft), got)
        if draft:
            planner.judged(match, len(draft), got)
        else:
            planner.judged(match, 1 if predicted else 0, int(bool(predicted) and kept > 0))


def measure(model: str) -> dict[str, object]:
    """The batch costs and each scenario's plain prompts and replies on `model`."""
    settings = replace(Settings(), ctx=4096, threads=2)
    ready = open_chat(ChatRequest(LocalEngine(model), settings))
    try:
        costs = batch_costs(ready.engine)
        sampling = replace(ready.chat.sampling, temperature=0.0, max_tokens=200)
        plays = {}
        for name in SCENARIOS:
            _, replies, prompts = spec_bench._play(ready.chat, ready.engine, sampling, name, "off")
            plays[name] = {"prompts": prompts, "replies": replies}
    finally:
        ready.close()
    return {"model": model, "costs": {str(n): s for n, s in costs.items()}, "plays": plays}


def report(data: dict[str, object]) -> None:
    model = data["model"]
    costs = {int(n): float(s) for n, s in data["costs"].items()}  # type: ignore[attr-defined]
    print(model, "batch ms:", " ".join(f"{n}:{s * 1000:.1f}" for n, s in costs.items()))

    def cost(n: int) -> float:  # linear between the sizes measured
        lo = max(s for s in costs if s <= n)
        hi = min((s for s in costs if s >= n), default=lo)
        if hi == lo:
            return costs[lo]
        return costs[lo] + (costs[hi] - costs[lo]) * (n - lo) / (hi - lo)

    for name, play in data["plays"].items():  # type: ignore[attr-defined]
        prompts, replies = play["prompts"], play["replies"]
        n = sum(len(r) for r in replies)
        row = []
        for mode in ("lookup", "auto", "oracle"):
            planner = DraftPlanner()
            pairs = zip(prompts, replies, strict=True)
            runs = [replay(p, r, mode, cost, planner) for p, r in pairs]
            seconds = sum(r[0] for r in runs)
            drafted, kept = sum(r[1] for r in runs), sum(r[2] for r in runs)
            row.append(f"{mode} {n * cost(1) / seconds:.2f}x ({kept}/{drafted} kept)")
        print(f"{model} {name}: {n} reply tokens · " + " · ".join(row))


def main(args: list[str]) -> None:
    if args[0] == "--load":
        with open(args[1]) as f:
            report(json.load(f))
        return
    data = measure(args[0])
    if args[1:2] == ["--save"]:
        with open(args[2], "w") as f:
            json.dump(data, f)
    report(data)


if __name__ == "__main__":
    main(sys.argv[1:])
