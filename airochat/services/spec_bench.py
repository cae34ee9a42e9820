"""`airochat bench --scenario qa|code|chat`: speculative decoding measured, not asserted.

Each scenario is played through the same `Chat` users run, once per --speculate mode on the
same loaded model, temperature 0: decode tokens/s, drafts proposed and accepted, and whether
the text is the same as plain decoding's -- where it is not, the first token that differs and
the target's top-2 logit gap there (llama.cpp's batched and single-token logits differ in their
last bits, so a near-tie may go the other way). With a llama-server binary, the same prompts go
to llama-server once per `--spec-type`, in the same run, for its own decode speed.

A shared 2-core machine moves single timings by tens of percent, so with `repeat` > 1 the modes
are played in turn `repeat` times (off, lookup, auto, off, lookup, auto, ...) and each reports the
median of its decode speeds, with every run's speed beside it (`tps_runs`). The text and the
draft counts are the same in every repetition (temperature 0); they are taken from the first.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from airochat.adapters.llama_engine import LlamaEngine
from airochat.adapters.llama_speculative import speculator_for, top2_gap
from airochat.domain.bench_texts import SCENARIOS, scenario_messages
from airochat.domain.events import Done
from airochat.domain.lookup_draft import LookupDrafter
from airochat.errors import UsageError
from airochat.services.chat import Chat

MODES = ("off", "lookup", "auto")


def scenario_names(given: str) -> list[str]:
    """--scenario qa, code, chat, a comma list of them, or all."""
    names = list(SCENARIOS) if given == "all" else [n.strip() for n in given.split(",")]
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise UsageError(f"--scenario is qa, code, chat or all, not {given!r}")
    return names


@dataclass
class ModeRun:
    mode: str
    decode_tps: float = 0.0
    generated: int = 0
    drafted: int = 0
    accepted: int = 0
    batches: int = 0  # verification batches (accepted / batches: the mean accepted run)
    copyable: float = 0.0  # share of reply tokens the chat's own n-gram lookup predicts
    same_text: bool = True
    divergence: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    tps_runs: list[float] = field(default_factory=list)  # each repetition's decode tok/s


@dataclass
class ScenarioResult:
    scenario: str
    prompt_tokens: int
    runs: list[ModeRun] = field(default_factory=list)
    server: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_scenario(
    chat: Chat,
    name: str,
    reply_tokens: int,
    modes: tuple[str, ...] = MODES,
    progress: Callable[[str], None] = lambda _m: None,
    repeat: int = 1,
) -> tuple[ScenarioResult, list[list[int]]]:
    """The scenario once per mode (`repeat` times in turn, medians reported); also the prompts
    the chat built (for llama-server)."""
    engine = chat.engine
    assert isinstance(engine, LlamaEngine)
    kept = engine.speculator
    sampling = replace(chat.sampling, temperature=0.0, max_tokens=reply_tokens)
    result = ScenarioResult(name, 0)
    prompts: list[list[int]] = []
    plain: list[list[int]] = []
    if kept is not None and kept.mode not in modes:  # draft:MODEL, loaded with the target
        modes = (*modes, kept.mode)
    runs: dict[str, ModeRun] = {}
    try:
        for rep in range(max(repeat, 1)):
            for mode in modes:
                count = f" ({rep + 1}/{repeat})" if repeat > 1 else ""
                progress(f"{name}: --speculate {mode}{count}")
                engine.speculator = kept if kept and mode == kept.mode else speculator_for(mode)
                engine.forget_cache()
                run, replies, built = _play(chat, engine, sampling, name, mode)
                if mode in runs:  # the same text and drafts again: only the speed is new
                    runs[mode].tps_runs.append(run.decode_tps)
                    continue
                runs[mode] = run
                run.tps_runs.append(run.decode_tps)
                if mode == modes[0]:
                    plain, prompts = replies, built
                    result.prompt_tokens = len(built[-1]) if built else 0
                else:
                    _compare(engine, run, plain, replies, prompts)
        if repeat <= 1:  # plain decoding again at the end, averaged with the first: warm-up
            engine.speculator = None
            engine.forget_cache()
            again = _play(chat, engine, sampling, name, "off")[0]
            runs[modes[0]].tps_runs.append(again.decode_tps)
    finally:
        engine.speculator = kept
    for run in runs.values():
        run.decode_tps = statistics.median(run.tps_runs)
    result.runs = list(runs.values())
    return result, prompts


def _play(
    chat: Chat, engine: LlamaEngine, sampling: Any, name: str, mode: str
) -> tuple[ModeRun, list[list[int]], list[list[int]]]:
    probe = Chat(
        engine, chat.template, chat.conversation.system, sampling,
        model_name=chat.model_name, templates=chat.templates,
    )  # fmt: skip
    run = ModeRun(mode)
    decoded, seconds, hits = 0, 0.0, 0
    replies, prompts = [], []
    for message in scenario_messages(name):
        done = next(e for e in probe.send(message) if isinstance(e, Done))
        last = probe.conversation.turns[-1]
        cut = len(last.reply_tokens) + len(last.end_tokens)
        prompts.append(probe.conversation.tokens()[:-cut])
        replies.append(list(done.tokens))
        run.generated += done.generated
        run.drafted += done.drafted
        run.accepted += done.accepted
        run.batches += engine.speculator.last.batches if engine.speculator else 0
        hits += lookup_hits(prompts[-1], list(done.tokens))
        run.text += done.text
        if done.generated > 1:
            decoded += done.generated - 1
            seconds += done.decode_s
    run.decode_tps = decoded / seconds if seconds else 0.0
    run.copyable = hits / run.generated if run.generated else 0.0
    return run, replies, prompts


def lookup_hits(prompt: list[int], reply: list[int]) -> int:
    """Reply tokens that prompt n-gram lookup would have drafted right, one ahead: the ceiling
    of what `lookup` can accept on this reply, whatever the draft length."""
    drafter = LookupDrafter()
    drafter.reset(prompt)
    hits = 0
    for token in reply:
        hits += drafter.draft(1) == [token]
        drafter.append(token)
    return hits


def _compare(
    engine: LlamaEngine,
    run: ModeRun,
    plain: list[list[int]],
    replies: list[list[int]],
    prompts: list[list[int]],
) -> None:
    """Same text as plain decoding? If not, where it parted and how close the call was."""
    for turn, (a, b) in enumerate(zip(plain, replies, strict=True)):
        if a == b:
            continue
        run.same_text = False
        i = next(
            (j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        gap = top2_gap(engine.llama, prompts[turn] + a[:i])
        run.divergence = {
            "turn": turn + 1,
            "token": i,
            "char": len(engine.detokenize(a[:i])),
            "top2_logit_gap": round(gap, 4),
        }
        return


# llama-server's speculation (its 2026 flags); "none" is its plain decoding.
SERVER_SPEC_TYPES = ("none", "ngram-simple", "ngram-map-k", "ngram-mod", "ngram-cache")


def run_scenarios(
    chat: Chat,
    names: list[str],
    reply_tokens: int,
    llama_server: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    repeat: int = 1,
) -> list[ScenarioResult]:
    """Every scenario in `names`; with a llama-server binary, its --spec-type runs too."""
    out = []
    for name in names:
        result, prompts = run_scenario(chat, name, reply_tokens, progress=progress, repeat=repeat)
        if llama_server and prompts:
            engine = chat.engine
            assert isinstance(engine, LlamaEngine)
            plain = next(r.text for r in result.runs if r.mode == "off")
            stop = list(chat.template.stop)
            result.server = server_runs(
                engine, llama_server, prompts, reply_tokens, plain, stop, progress, repeat
            )
        out.append(result)
    return out


def server_runs(
    engine: LlamaEngine,
    binary: str,
    prompts: list[list[int]],
    reply_tokens: int,
    plain_text: str,
    stop: list[str],
    progress: Callable[[str], None],
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """The scenario's prompts through llama-server once per --spec-type, greedy; `repeat`
    times in turn, each on a fresh server (ngram-mod and ngram-cache keep what they saw across
    requests: on one server a repetition would draft from the last one's reply), the median
    speed reported."""
    reps: dict[str, list[list[dict[str, Any]]]] = {t: [] for t in SERVER_SPEC_TYPES}
    for rep in range(max(repeat, 1)):
        for spec_type in SERVER_SPEC_TYPES:
            count = f" ({rep + 1}/{repeat})" if repeat > 1 else ""
            progress(f"llama-server --spec-type {spec_type}{count}")
            reps[spec_type].append(
                _served(engine, binary, spec_type, prompts, reply_tokens, stop, progress)
            )
    rows = []
    for spec_type, done in reps.items():
        speeds = [_server_tps(r) for r in done]
        runs = done[0]
        generated = sum(len(r["tokens"]) for r in runs)
        hits = sum(lookup_hits(p, r["tokens"]) for p, r in zip(prompts, runs, strict=True))
        rows.append(
            {
                "spec_type": spec_type,
                "decode_tps": statistics.median(speeds),
                "tps_runs": speeds,
                "drafted": sum(r["draft_n"] for r in runs),
                "accepted": sum(r["draft_accepted"] for r in runs),
                "same_text": "".join(r["content"] for r in runs) == plain_text,
                "copyable": hits / generated if generated else 0.0,  # of its own text
            }
        )
    return rows


def _served(
    engine: LlamaEngine,
    binary: str,
    spec_type: str,
    prompts: list[list[int]],
    reply_tokens: int,
    stop: list[str],
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The prompts through a llama-server started for this one pass."""
    from airochat.adapters.server_process import ServerFlags, ServerProcess
    from airochat.adapters.speculative_server import complete, spec_flags

    process = ServerProcess(binary, ServerFlags(engine.options, extra=spec_flags(spec_type)))
    try:
        process.wait_ready(120.0, progress)
        return [complete(process.url, p, reply_tokens, stop) for p in prompts]
    finally:
        process.stop()


def _server_tps(runs: list[dict[str, Any]]) -> float:
    decoded = sum(max(r["predicted_n"] - 1, 0) for r in runs)
    seconds = sum(r["predicted_s"] for r in runs)
    return decoded / seconds if seconds else 0.0
