"""The chat session on the real engine: token history, KV reuse, memory on and off."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from airochat.adapters.llama_engine import LlamaEngine, LoadOptions
from airochat.domain.config import Sampling
from airochat.domain.events import Done
from airochat.domain.templates import get_template
from airochat.services.chat import Chat

SAMPLING = Sampling(temperature=0.0, max_tokens=6, seed=3)


def session(engine: LlamaEngine, history: bool = True) -> Chat:
    return Chat(engine, get_template("airoboros"), "A chat.", SAMPLING, history=history)


def reply(chat: Chat, message: str) -> Done:
    events = list(chat.send(message))
    done = events[-1]
    assert isinstance(done, Done)
    return done


def test_second_turn_reads_only_the_new_tokens(tiny_engine: LlamaEngine) -> None:
    tiny_engine.forget_cache()  # the engine is shared across tests: start cold
    chat = session(tiny_engine)
    first = reply(chat, "hello world")
    assert first.prompt_eval_tokens == first.prompt_tokens  # cold: everything read

    turn2 = chat.conversation.begin_turn("what is the capital", tiny_engine)
    second = reply(chat, "what is the capital")
    assert second.prompt_tokens == first.prompt_tokens + len(first.tokens) + 1 + len(
        turn2.prompt_tokens
    )
    # Read: the new turn, the EOS that closed reply 1, and at most the last reply token
    # (sampled but never fed back). Counted by llama.cpp, not computed by us.
    assert second.prompt_eval_tokens <= len(turn2.prompt_tokens) + 2
    assert second.prompt_eval_tokens < second.prompt_tokens / 2


def test_history_tokens_are_exactly_what_was_generated(tiny_engine: LlamaEngine) -> None:
    chat = session(tiny_engine)
    done = reply(chat, "hello")
    turn = chat.conversation.turns[0]
    assert turn.reply_tokens == done.tokens
    assert turn.end_tokens == [tiny_engine.eos_id]
    assert chat.conversation.tokens()[-1] == tiny_engine.eos_id


def test_prompt_text_shows_whole_chat_with_eos(tiny_engine: LlamaEngine) -> None:
    chat = session(tiny_engine)
    a = reply(chat, "hello")
    b = reply(chat, "world")
    assert chat.prompt_text() == (
        f"A chat. USER: hello ASSISTANT: {a.text}</s>USER: world ASSISTANT: {b.text}</s>"
    )


def test_no_history_each_turn_stands_alone(tiny_engine: LlamaEngine) -> None:
    chat = session(tiny_engine, history=False)
    first = reply(chat, "hello")
    second = reply(chat, "world")
    assert second.prompt_tokens == len(
        chat.conversation.begin_turn("world", tiny_engine).prompt_tokens
    )
    assert first.prompt_tokens == second.prompt_tokens  # same shape, no memory
    assert chat.prompt_text() == f"A chat. USER: world ASSISTANT: {second.text}</s>"


def test_reset_forgets(tiny_engine: LlamaEngine) -> None:
    chat = session(tiny_engine)
    reply(chat, "hello")
    chat.reset()
    assert chat.prompt_text() == ""
    assert reply(chat, "hello").prompt_tokens == len(chat.conversation.turns[0].prompt_tokens)


def test_stop_requested_mid_reply_keeps_the_turn(tiny_engine: LlamaEngine) -> None:
    chat = Chat(
        tiny_engine, get_template("airoboros"), "A chat.", Sampling(temperature=0.0, max_tokens=50)
    )
    events = chat.send("hello")
    next(e for e in events if not isinstance(e, Done))  # first chunk arrives
    tiny_engine.request_stop()
    done = next(e for e in events if isinstance(e, Done))
    assert done.finish_reason == "interrupted"
    assert chat.conversation.turns[0].finish_reason == "interrupted"
    assert chat.conversation.tokens()[-1] == tiny_engine.eos_id  # closed like any reply
    assert reply(chat, "again").finish_reason in ("length", "stop")  # next turn works


@pytest.mark.slow
def test_stop_during_a_long_prompt_read_returns_promptly(demo_gguf: Path) -> None:
    """One llama_decode of a long prompt runs for seconds in C; the abort callback ends it."""
    engine = LlamaEngine.load(LoadOptions(path=demo_gguf, n_ctx=4096, n_threads=2))
    try:
        chat = Chat(engine, get_template("airoboros"), "A chat.", SAMPLING)
        long_message = "The quick brown fox jumps over the lazy dog. " * 220  # ~2200 tokens
        timer = threading.Timer(0.5, engine.request_stop)
        start = time.perf_counter()
        timer.start()
        done = list(chat.send(long_message))[-1]
        assert isinstance(done, Done)
        elapsed = time.perf_counter() - start
        assert done.finish_reason == "interrupted" and done.generated == 0
        assert done.prompt_tokens > 2000
        # Reading 2000+ tokens takes ~10 s here; stopped, it returns within a batch or so.
        assert elapsed < 3.0, elapsed
        after = reply(chat, "hello")  # the context is usable again
        assert after.finish_reason in ("stop", "length")
    finally:
        engine.close()


def _long_chat(engine: LlamaEngine, turns: int, max_tokens: int) -> list[tuple[int, bool]]:
    """(tokens llama.cpp read, whether old exchanges were dropped first) per turn. After every
    turn the engine's cache holds exactly the chat's tokens up to the last reply (its tail may
    still hold the tokens of a stop string that were cut; the next prompt trims them)."""
    from airochat.domain.events import Notice

    engine.forget_cache()
    chat = Chat(
        engine,
        get_template("airoboros"),
        "A chat.",
        Sampling(temperature=0.0, max_tokens=max_tokens),
    )
    out = []
    for i in range(turns):
        events = list(chat.send(f"tell me about the capital, part {i}"))
        done = next(e for e in events if isinstance(e, Done))
        out.append((done.prompt_eval_tokens, any(isinstance(e, Notice) for e in events)))
        last = chat.conversation.turns[-1]
        prompt = chat.conversation.tokens()[: -len(last.reply_tokens) - len(last.end_tokens)]
        assert engine.cached_tokens()[: len(prompt)] == prompt
    return out


def test_turns_past_the_context_limit_read_only_their_new_tokens(tiny_gguf: Path) -> None:
    engine = LlamaEngine.load(LoadOptions(path=tiny_gguf, n_ctx=256, n_threads=1))
    try:
        reads = _long_chat(engine, 16, 12)
    finally:
        engine.close()
    before = [r for r, dropped in reads[1:] if not dropped]
    after = [r for r, dropped in reads if dropped]
    assert after, "the context never filled"
    assert max(after) <= 3 * max(before), reads  # was: the whole history every turn


@pytest.mark.slow
def test_turns_past_the_context_limit_on_the_demo_model(demo_gguf: Path) -> None:
    engine = LlamaEngine.load(LoadOptions(path=demo_gguf, n_ctx=512, n_threads=2))
    try:
        reads = _long_chat(engine, 14, 32)
    finally:
        engine.close()
    before = [r for r, dropped in reads[1:] if not dropped]
    after = [r for r, dropped in reads if dropped]
    assert after and max(after) <= 3 * max(before), reads
