"""`airochat bench`: a scripted chat through the same Chat users run, and the same chat
driven by bare llama-cpp-python on the same loaded model, for an honest comparison."""

from __future__ import annotations

import resource
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from airochat.adapters.kv_file import kv_path
from airochat.domain.engine import BenchProbes, Engine, KeepsCache
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
    drafted: int = 0  # speculative decoding (in process, or as a server says): drafts verified
    accepted: int = 0  # and kept


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
    # The last prompt continued for the same number of tokens with the same seed, through the
    # chat path's engine and through the engine's raw API: the same tokens, so the two speeds
    # compare the code around the model and nothing else.
    same_prompt: dict[str, Any] = field(default_factory=dict)
    drafted: int = 0  # over the scripted chat's turns
    accepted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def _cold_ttft(engine: BenchProbes, chat: Chat, tokens: list[int]) -> float:
    """Time to first token with nothing cached: what every turn would cost without reuse."""
    return engine.read_cold(tokens)


def _baseline(engine: BenchProbes, chat: Chat, reply_tokens: int) -> float:
    """The same scripted chat through the engine's own completion API, no chat around it."""
    tpl = chat.template
    played = SCRIPT[: min(len(SCRIPT), len(chat.conversation.turns))]
    turns = [
        render(tpl.first_turn(chat.conversation.system, m) if i == 0 else tpl.next_turn(m))
        for i, m in enumerate(played)
    ]
    return engine.bare_chat_tps(
        turns, render(tpl.end_of_reply()), chat.sampling, list(tpl.stop), reply_tokens
    )


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
                drafted=done.drafted,
                accepted=done.accepted,
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
    probes: BenchProbes | None = None,
) -> BenchResult:
    """`probes` come from the engine's builder (services/engines.py), None where the engine has
    no raw API to compare the chat path with."""
    engine = chat.engine
    if probes is None:
        raise UsageError("this engine cannot be benched (no raw completion API to compare)")
    chat.set_sampling(max_tokens=reply_tokens)
    played = _play(chat, (SCRIPT * (turns // len(SCRIPT) + 1))[:turns], progress)
    history_tokens = chat.conversation.tokens()
    progress("reading the whole history cold")
    prompt_tps = len(history_tokens) / probes.read_cold(history_tokens)
    last_cold = _cold_ttft(probes, chat, played.prompts[-1])
    if plot:
        progress("cold reads per turn (for the plot)")
        for res, prompt in zip(played.turns, played.prompts, strict=True):
            res.cold_ttft_s = _cold_ttft(probes, chat, prompt)
    resume: dict[str, Any] = {}
    if engine.capabilities.keeps_cache and isinstance(engine, KeepsCache):
        progress("resume: the chat saved and loaded, with and without its cache")
        resume = _resume(chat, engine, probes)
    progress("same prompt, same seed: the chat path's engine against the raw API")
    room = [p for p in played.prompts if len(p) + max(reply_tokens, 64) < engine.n_ctx]
    same = _same_prompt(engine, probes, chat, room[-1], reply_tokens) if room else {}
    progress("baseline: the same chat through the engine's own completion API")
    baseline = _baseline(probes, chat, reply_tokens)
    decode_tps = played.decoded / played.decode_s if played.decode_s else 0.0
    return BenchResult(
        model=chat.model_name,
        threads=probes.threads,
        n_ctx=engine.n_ctx,
        reply_tokens=reply_tokens,
        load_s=probes.load_s,
        prompt_tps=prompt_tps,
        decode_tps=decode_tps,
        baseline_decode_tps=baseline,
        overhead=1 - decode_tps / baseline if baseline else 0.0,
        peak_rss_bytes=_peak_rss(),
        last_turn_cold_ttft_s=last_cold,
        turns=played.turns,
        resume=resume,
        same_prompt=same,
        drafted=sum(t.drafted for t in played.turns),
        accepted=sum(t.accepted for t in played.turns),
    )


def _same_prompt(
    engine: Engine, probes: BenchProbes, chat: Chat, prompt: list[int], n: int
) -> dict[str, Any]:
    sampling = replace(chat.sampling, max_tokens=max(n, 64), seed=max(chat.sampling.seed, 1))
    ours, theirs = [], []
    for _ in range(2):  # alternated, to even out the machine
        probes.read_cold(prompt[:-1])
        done = next(e for e in engine.generate(prompt, sampling) if isinstance(e, Done))
        ours.append((done.generated, done.tokens_per_s))
        probes.read_cold(prompt[:-1])
        theirs.append(probes.bare_tps(prompt, sampling))
    return {
        "tokens": ours[0][0],
        "raw_tokens": theirs[0][0],
        "chat_path_tps": sum(t for _, t in ours) / len(ours),
        "raw_api_tps": sum(t for _, t in theirs) / len(theirs),
    }


def _resume(chat: Chat, engine: KeepsCache, probes: BenchProbes) -> dict[str, Any]:
    """A saved chat resumed by a new process: the first turn after loading, once reading the
    whole chat again and once from the KV cache saved beside the session."""
    tokens = chat.conversation.tokens()
    out: dict[str, Any] = {"history_tokens": len(tokens)}
    # The cache as a chat leaves it: everything but the last reply token (sampled, never
    # read) and the EOS after it. (The cold reads above left it elsewhere.)
    probes.read_cold(tokens[: -1 - len(chat.conversation.turns[-1].end_tokens)])
    with tempfile.TemporaryDirectory(prefix="airochat-bench-") as tmp:
        path = Path(tmp) / "bench-session.json"
        session_file.save(chat, path)
        session_cache.save(chat, kv_path(path), 1 << 40)
        out["cache_bytes"] = session_cache.size(kv_path(path)) or 0
        for label, with_cache in (("reread", False), ("cached", True)):
            engine.forget_cache()
            probe = Chat(
                chat.engine,
                chat.template,
                chat.conversation.system,
                chat.sampling,
                model_name=chat.model_name,
                templates=chat.templates,
            )
            session_file.load(probe, path)
            if with_cache:
                session_cache.load(probe, kv_path(path))
            done = next(e for e in probe.send("Go on.") if isinstance(e, Done))
            out[f"ttft_{label}_s"] = done.ttft_s
            out[f"read_{label}"] = done.prompt_eval_tokens
    return out


def _last_reply_len(chat: Chat) -> int:
    last = chat.conversation.turns[-1]
    return len(last.reply_tokens) + len(last.end_tokens)
