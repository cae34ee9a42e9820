"""`airochat bench`: a scripted chat through the same Chat users run, and the same chat
driven by bare llama-cpp-python on the same loaded model, for an honest comparison."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from airochat.adapters.llama_engine import LlamaEngine
from airochat.domain.events import Done, Notice
from airochat.domain.templates import render
from airochat.errors import UsageError
from airochat.services import session_cache, session_file
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
    dropped: str = ""  # the notice when old exchanges were dropped before this turn


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
    resume: dict[str, Any] = field(default_factory=dict)

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
    for i, message in enumerate(SCRIPT[: min(len(SCRIPT), len(chat.conversation.turns))]):
        turn = (
            tpl.first_turn(chat.conversation.system, message) if i == 0 else tpl.next_turn(message)
        )
        transcript += render(turn)
        if len(llm.tokenize(transcript.encode())) + reply_tokens >= engine.n_ctx:
            break  # a plain completion has no way to drop old turns: measure what fits
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


def _play(chat: Chat, script: list[str], progress: Callable[[str], None]) -> _Played:
    """The scripted chat through the chat service, as a user's would go."""
    played = _Played()
    for i, message in enumerate(script, start=1):
        progress(f"turn {i}/{len(script)}")
        history = len(chat.conversation.tokens())
        events = list(chat.send(message))
        done = next(e for e in events if isinstance(e, Done))
        dropped = " ".join(e.text for e in events if isinstance(e, Notice))
        if done.generated > 1:
            played.decoded += done.generated - 1
            played.decode_s += done.decode_s
        played.prompts.append(chat.conversation.tokens()[: -_last_reply_len(chat)])
        played.turns.append(
            BenchTurn(
                i,
                history,
                done.ttft_s,
                done.tokens_per_s,
                done.prompt_eval_tokens,
                done.generated,
                dropped=dropped,
            )
        )
    return played


@dataclass
class _Played:
    turns: list[BenchTurn] = field(default_factory=list)
    prompts: list[list[int]] = field(default_factory=list)
    decoded: int = 0
    decode_s: float = 0.0


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
    played = _play(chat, (SCRIPT * (turns // len(SCRIPT) + 1))[:turns], progress)
    history_tokens = chat.conversation.tokens()
    progress("reading the whole history cold")
    prompt_tps = len(history_tokens) / engine.read_cold(history_tokens)
    last_cold = _cold_ttft(engine, chat, played.prompts[-1])
    if plot:
        progress("cold reads per turn (for the plot)")
        for res, prompt in zip(played.turns, played.prompts, strict=True):
            res.cold_ttft_s = _cold_ttft(engine, chat, prompt)
    progress("resume: the chat saved and loaded, with and without its cache")
    resume = _resume(chat, engine)
    progress("baseline: the same chat through bare llama-cpp-python")
    baseline = _baseline(engine, chat, reply_tokens)
    decode_tps = played.decoded / played.decode_s if played.decode_s else 0.0
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
        turns=played.turns,
        resume=resume,
    )


def _resume(chat: Chat, engine: LlamaEngine) -> dict[str, Any]:
    """A saved chat resumed by a new process: the first turn after loading, once reading the
    whole chat again and once from the KV cache saved beside the session."""
    tokens = chat.conversation.tokens()
    out: dict[str, Any] = {"history_tokens": len(tokens)}
    # The cache as a chat leaves it: everything but the last reply token (sampled, never
    # read) and the EOS after it. (The cold reads above left it elsewhere.)
    engine.read_cold(tokens[: -1 - len(chat.conversation.turns[-1].end_tokens)])
    with tempfile.TemporaryDirectory(prefix="airochat-bench-") as tmp:
        path = Path(tmp) / "bench-session.json"
        session_file.save(chat, path)
        session_cache.save(chat, path, 1 << 40)
        out["cache_bytes"] = session_cache.size(path) or 0
        for label, with_cache in (("reread", False), ("cached", True)):
            engine.forget_cache()
            probe = Chat(
                engine,
                chat.template,
                chat.conversation.system,
                chat.sampling,
                model_name=chat.model_name,
                templates=chat.templates,
            )
            session_file.load(probe, path)
            if with_cache:
                session_cache.load(probe, path)
            done = next(e for e in probe.send("Go on.") if isinstance(e, Done))
            out[f"ttft_{label}_s"] = done.ttft_s
            out[f"read_{label}"] = done.prompt_eval_tokens
    return out


def _last_reply_len(chat: Chat) -> int:
    last = chat.conversation.turns[-1]
    return len(last.reply_tokens) + len(last.end_tokens)
