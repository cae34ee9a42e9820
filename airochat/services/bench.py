"""`airochat bench`: a scripted chat through the same Chat users run, and the same chat
driven by bare llama-cpp-python on the same loaded model, for an honest comparison."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from airochat.adapters.llama_engine import LlamaEngine
from airochat.domain.events import Done
from airochat.domain.templates import render
from airochat.errors import UsageError
from airochat.services.chat import Chat

SCRIPT = [
    "Tell me about the history of the printing press.",
    "Who was Johannes Gutenberg, and what did he invent exactly?",
    "How did movable type change the spread of knowledge in Europe?",
    "What were the main materials used for early printing, and why?",
    "Compare the printing press with the invention of the internet.",
    "Which books were printed first, and how many copies were made?",
    "How did the church and the state react to printed books?",
    "Summarise our conversation so far in a few sentences.",
]


@dataclass
class BenchTurn:
    turn: int
    history_tokens: int
    ttft_s: float
    decode_tps: float
    prompt_eval_tokens: int
    generated: int
    cold_ttft_s: float | None = None  # the same prompt read without the KV cache (--plot)


@dataclass
class BenchResult:
    model: str
    threads: int
    n_ctx: int
    reply_tokens: int
    load_s: float
    prompt_tps: float
    decode_tps: float
    baseline_decode_tps: float
    overhead: float
    peak_rss_bytes: int
    last_turn_cold_ttft_s: float
    turns: list[BenchTurn] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def _cold_ttft(engine: LlamaEngine, chat: Chat, tokens: list[int]) -> float:
    """Time to first token with nothing cached: what every turn would cost without reuse."""
    engine.forget_cache()
    done = list(engine.generate(tokens, replace(chat.sampling, max_tokens=1)))[-1]
    assert isinstance(done, Done)
    return done.ttft_s


def _baseline(engine: LlamaEngine, chat: Chat, reply_tokens: int) -> float:
    """The same scripted chat through llama-cpp-python's own streaming completion API."""
    llm = engine.llama
    s = chat.sampling
    transcript = ""
    tpl = chat.template
    n_decoded, decode_time = 0, 0.0
    engine.forget_cache()
    for i, message in enumerate(SCRIPT[: len(chat.conversation.turns)]):
        turn = (
            tpl.first_turn(chat.conversation.system, message) if i == 0 else tpl.next_turn(message)
        )
        transcript += render(turn)
        first = last = 0.0
        count = 0
        reply = ""
        engine.decoded_tokens(reset=True)
        for chunk in llm.create_completion(
            transcript,
            max_tokens=reply_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            min_p=s.min_p,
            repeat_penalty=s.repeat_penalty,
            seed=max(s.seed, 0),
            stop=list(tpl.stop),
            stream=True,
        ):
            last = time.perf_counter()
            count += 1
            if count == 1:
                first = last
            reply += chunk["choices"][0]["text"]  # type: ignore[index]
        if count > 1:
            # Chunks are not tokens (text near a stop string is held back): llama.cpp counts.
            n_decoded += engine.decoded_tokens()
            decode_time += last - first
        transcript += reply + render(tpl.end_of_reply())
    return n_decoded / decode_time if decode_time else 0.0


def run_bench(
    chat: Chat,
    turns: int,
    reply_tokens: int,
    plot: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
) -> BenchResult:
    engine = chat.engine
    if not isinstance(engine, LlamaEngine):
        raise UsageError("bench compares against bare llama-cpp-python: it needs a local model")
    chat.set_sampling(max_tokens=reply_tokens)
    script = (SCRIPT * (turns // len(SCRIPT) + 1))[:turns]
    results: list[BenchTurn] = []
    n_decoded, decode_time = 0, 0.0
    for i, message in enumerate(script, start=1):
        progress(f"turn {i}/{turns}")
        history = len(chat.conversation.tokens())
        done = [e for e in chat.send(message) if isinstance(e, Done)][-1]
        if done.generated > 1:
            n_decoded += done.generated - 1
            decode_time += done.decode_s
        results.append(
            BenchTurn(
                i, history, done.ttft_s, done.tokens_per_s, done.prompt_eval_tokens, done.generated
            )
        )
    history_tokens = chat.conversation.tokens()
    progress("reading the whole history cold")
    engine.forget_cache()
    start = time.perf_counter()
    engine.llama.eval(history_tokens)
    prompt_tps = len(history_tokens) / (time.perf_counter() - start)
    last_prompt = history_tokens[: len(history_tokens) - _last_reply_len(chat)]
    last_cold = _cold_ttft(engine, chat, last_prompt)
    if plot:
        progress("cold reads per turn (for the plot)")
        offset = 0
        for res, turn in zip(results, chat.conversation.turns, strict=True):
            offset += len(turn.prompt_tokens)
            res.cold_ttft_s = _cold_ttft(engine, chat, history_tokens[:offset])
            offset += len(turn.reply_tokens) + len(turn.end_tokens)
    progress("baseline: the same chat through bare llama-cpp-python")
    baseline = _baseline(engine, chat, reply_tokens)
    decode_tps = n_decoded / decode_time if decode_time else 0.0
    return BenchResult(
        model=chat.model_name,
        threads=engine.options.n_threads,
        n_ctx=engine.n_ctx,
        reply_tokens=reply_tokens,
        load_s=engine.load_s,
        prompt_tps=prompt_tps,
        decode_tps=decode_tps,
        baseline_decode_tps=baseline,
        overhead=1 - decode_tps / baseline if baseline else 0.0,
        peak_rss_bytes=_peak_rss(),
        last_turn_cold_ttft_s=last_cold,
        turns=results,
    )


def _last_reply_len(chat: Chat) -> int:
    last = chat.conversation.turns[-1]
    return len(last.reply_tokens) + len(last.end_tokens)
