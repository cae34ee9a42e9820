"""Speculative decoding (--speculate): the same text as plain decoding, fewer decode steps.

On the generated models no near-tie exists, so the text must be identical token for token,
across a multi-turn chat, a KV shift past the context limit, a resume from a saved cache, stop
strings, the token budget and a stop requested in the middle of a verified batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airochat.adapters.llama_engine import LlamaEngine, LoadOptions
from airochat.adapters.llama_speculative import LookupSpeculator
from airochat.domain.config import Sampling
from airochat.domain.events import Done, TextChunk
from airochat.domain.lookup_draft import DraftLength, DraftPlanner, LookupDrafter, check_mode
from airochat.domain.templates import get_template
from airochat.services.chat import Chat
from tests.conftest import run_cli

GREEDY = Sampling(temperature=0.0, max_tokens=40, seed=3)


@pytest.fixture(scope="module")
def script_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reply that is the same sentence every turn: turn 2 on quotes turn 1."""
    from tests.script_model import write_script_model

    pieces = [f"word{i} " for i in range(12)] + ["end."]
    return write_script_model(tmp_path_factory.mktemp("spec") / "script.gguf", pieces)


def load(path: Path, n_ctx: int = 512, mode: str | None = None) -> LlamaEngine:
    engine = LlamaEngine.load(LoadOptions(path=path, n_ctx=n_ctx, n_threads=1))
    engine.speculator = LookupSpeculator(mode) if mode else None
    return engine


@pytest.fixture
def engines(request: pytest.FixtureRequest) -> Iterator[tuple[LlamaEngine, LlamaEngine]]:
    path, n_ctx = request.getfixturevalue(request.param[0]), request.param[1]
    plain, spec = load(path, n_ctx), load(path, n_ctx, "lookup")
    yield plain, spec
    plain.close()
    spec.close()


def chat_of(engine: LlamaEngine, sampling: Sampling = GREEDY) -> Chat:
    return Chat(engine, get_template("airoboros"), "A chat.", sampling)


def play(chat: Chat, messages: list[str]) -> list[Done]:
    out = []
    for message in messages:
        done = next(e for e in chat.send(message) if isinstance(e, Done))
        out.append(done)
    return out


def test_lookup_drafts_what_followed_the_longest_match() -> None:
    d = LookupDrafter(max_ngram=3, min_ngram=1)
    d.reset([1, 2, 3, 4, 5, 9, 2, 3])
    assert d.draft(3) == [4, 5, 9]  # "2 3" was followed by 4 5 9
    d.append(7)
    assert d.draft(2) == []  # "3 7", "7": never seen
    d.reset([5, 6, 5, 6])
    assert d.draft(8) == [5, 6]  # the latest earlier "5 6"... ran into the end
    assert LookupDrafter(min_ngram=2).draft(4) == []


def test_a_copied_stretch_is_followed_not_looked_up_again() -> None:
    """While the reply copies a stretch, drafts continue that stretch, even where its last
    n-gram occurred more recently followed by something else."""
    d = LookupDrafter(max_ngram=4)
    d.reset([1, 2, 3, 4, 5, 6, 7, 8, 20, 5, 6, 7, 8, 9, 0])
    d.extend([1, 2])
    assert d.draft(2) == [3, 4]  # "1 2" was followed by 3 4
    d.extend([3, 4, 5, 6, 7, 8])  # copied; the latest "5 6 7 8" was followed by 9, not 20
    assert d.draft(2) == [20, 5]
    d.append(9)  # the reply left the stretch: look up again ("8 9" was followed by 0)
    assert d.draft(1) == [0]


def test_draft_length_grows_on_full_acceptance_and_backs_off() -> None:
    n = DraftLength(k=4, k_max=16)
    n.update(4, 4)
    assert n.next() == 8
    n.update(8, 2)
    assert n.next() == 3
    auto = DraftLength(k=4, backoff=True)
    for _ in range(3):
        auto.update(4, 0)
    assert auto.next() == 0  # paused after drafts kept being refused


def test_the_planner_drafts_long_where_batches_are_cheap_and_not_where_they_are_not() -> None:
    cheap, dear = DraftPlanner(), DraftPlanner()
    for n in range(1, 18):
        cheap.timed(n, 0.010 + 0.002 * (n - 1))
        dear.timed(n, 0.010 * n)  # a batch costs what its tokens cost one by one
    for planner in (cheap, dear):
        for _ in range(20):
            planner.judged(4, 1, 1)  # the lookup keeps predicting the token the model emits
    assert cheap.plan(4, 16) >= 12
    assert dear.plan(4, 16) == 0
    assert cheap.plan(0, 16) == 0  # no n-gram match: nothing to verify


def test_an_untimed_batch_size_is_read_off_the_line_through_the_timed_ones() -> None:
    planner = DraftPlanner()
    planner.timed(1, 0.010)
    assert planner.seconds(3) == pytest.approx(0.014)  # the prior: a fifth of a token each
    assert planner.plan(4, 8) >= 1  # optimistic enough to try a draft and time it
    planner.timed(2, 0.016)
    planner.timed(8, 0.040)
    assert planner.seconds(5) == pytest.approx(0.028)
    assert planner.seconds(16) == pytest.approx(0.072)  # past the largest: its slope
    assert planner.seconds(1) == 0.010
    still = DraftPlanner()
    still.timed(1, 0.0)  # a clock that did not move
    still.timed(2, 0.0)
    assert still.plan(4, 8) >= 0


def test_mode_check_is_one_line() -> None:
    assert check_mode("auto") is None and check_mode("draft:tiny") is None
    assert check_mode("fast") == "--speculate is off, lookup, auto or draft:MODEL, not 'fast'"


@pytest.mark.parametrize("engines", [("script_gguf", 512)], indirect=True)
def test_a_repeating_chat_gets_the_same_text_with_drafts_accepted(
    engines: tuple[LlamaEngine, LlamaEngine],
) -> None:
    plain, spec = engines
    messages = ["say it", "say it again", "and once more", "one last time"]
    a, b = play(chat_of(plain), messages), play(chat_of(spec), messages)
    assert [d.tokens for d in a] == [d.tokens for d in b]
    assert [d.text for d in a] == [d.text for d in b]
    assert a[0].text.startswith("word0 word1")
    assert sum(d.drafted for d in a) == 0
    assert all(d.accepted > 0 for d in b[1:]), [(d.drafted, d.accepted) for d in b]
    # Drafted tokens went through in batches: fewer single-token decodes than tokens.
    assert b[-1].accepted >= len(b[-1].tokens) // 2
    # The prompt read is counted as before (the verified drafts are not prompt tokens); a
    # draft may have put the reply's EOS in the cache already: one token less to read.
    for da, db in zip(a, b, strict=True):
        assert da.prompt_eval_tokens - 1 <= db.prompt_eval_tokens <= da.prompt_eval_tokens


@pytest.mark.parametrize("engines", [("looping_gguf", 512)], indirect=True)
def test_budget_and_stop_strings_hold_in_the_middle_of_a_batch(
    engines: tuple[LlamaEngine, LlamaEngine],
) -> None:
    plain, spec = engines
    for n in (1, 2, 7, 23, 60):
        sampling = Sampling(temperature=0.0, max_tokens=n)
        a, b = play(chat_of(plain, sampling), ["go"]), play(chat_of(spec, sampling), ["go"])
        assert len(b[0].tokens) == n and b[0].tokens == a[0].tokens, n
    first = list(plain.generate(plain.tokenize_text("USER: go\nASSISTANT: "), GREEDY))[-1]
    assert isinstance(first, Done)
    prompt = plain.tokenize_text("USER: go\nASSISTANT: ") + first.tokens
    prompt += plain.tokenize_text("\nUSER: more\nASSISTANT: ")
    for stop in (["line 3"], ["goes on\nline 5 of"]):
        a_done = list(plain.generate(prompt, Sampling(temperature=0.0, max_tokens=80), stop))
        b_done = list(spec.generate(prompt, Sampling(temperature=0.0, max_tokens=80), stop))
        assert a_done == [*a_done[:-1], a_done[-1]]
        da, db = a_done[-1], b_done[-1]
        assert isinstance(da, Done) and isinstance(db, Done)
        assert (db.text, db.tokens, db.stopped_by) == (da.text, da.tokens, da.stopped_by)
        assert db.drafted > 0 and db.stopped_by == stop[0]
        chunks = "".join(e.text for e in b_done if isinstance(e, TextChunk))
        assert chunks == db.text


@pytest.mark.parametrize("engines", [("tiny_gguf", 256)], indirect=True)
def test_a_long_chat_past_the_context_limit_is_the_same_text(
    engines: tuple[LlamaEngine, LlamaEngine],
) -> None:
    """The random tiny model repeats itself; the chat drops old exchanges (a KV shift)."""
    plain, spec = engines
    messages = [f"tell me about the capital, part {i}" for i in range(16)]
    sampling = Sampling(temperature=0.0, max_tokens=12)
    chat_a, chat_b = chat_of(plain, sampling), chat_of(spec, sampling)
    a, b = play(chat_a, messages), play(chat_b, messages)
    assert [d.tokens for d in a] == [d.tokens for d in b]
    assert chat_a.conversation.tokens() == chat_b.conversation.tokens()
    assert len(chat_b.conversation.turns) < len(messages), "the context never filled"
    assert sum(d.accepted for d in b) > 0
    last = chat_b.conversation.turns[-1]
    prompt = chat_b.conversation.tokens()[: -len(last.reply_tokens) - len(last.end_tokens)]
    assert spec.cached_tokens()[: len(prompt)] == prompt


@pytest.mark.parametrize("engines", [("looping_gguf", 512)], indirect=True)
def test_sampling_above_zero_draws_the_same_tokens_with_the_same_seed(
    engines: tuple[LlamaEngine, LlamaEngine],
) -> None:
    """A draft is kept only where the target's own draw agrees; the draws are the same."""
    plain, spec = engines
    sampling = Sampling(temperature=0.8, top_p=0.95, max_tokens=40, seed=11)
    a = play(chat_of(plain, sampling), ["go", "again"])
    b = play(chat_of(spec, sampling), ["go", "again"])
    assert [d.tokens for d in a] == [d.tokens for d in b]
    assert sum(d.accepted for d in b) > 0


@pytest.mark.parametrize("engines", [("looping_gguf", 512)], indirect=True)
def test_a_stop_in_the_middle_of_a_verified_batch_keeps_the_cache_true(
    engines: tuple[LlamaEngine, LlamaEngine],
) -> None:
    plain, spec = engines
    sampling = Sampling(temperature=0.0, max_tokens=200)
    chat = chat_of(spec, sampling)
    play(chat, ["go"])  # the script is in the history: the next reply is all drafts
    events = chat.send("again")
    seen = 0
    for event in events:
        if isinstance(event, TextChunk):
            seen += 1
            if seen == 9:
                spec.request_stop()
        if isinstance(event, Done):
            done = event
            break
    assert done.finish_reason == "interrupted" and done.accepted > 0
    assert len(done.tokens) < 40
    # The cache holds exactly a prefix of the chat's tokens, nothing from rejected drafts.
    cached, chat_tokens = spec.cached_tokens(), chat.conversation.tokens()
    assert cached == chat_tokens[: len(cached)] and len(cached) >= len(chat_tokens) - 3
    # The next turn answers as a chat with nothing cached does.
    after = play(chat, ["and again"])[0]
    plain.forget_cache()
    cold = next(e for e in plain.generate(chat.conversation.tokens()[: -len(after.tokens) - 1],
                                          sampling) if isinstance(e, Done))  # fmt: skip
    assert after.tokens == cold.tokens


@pytest.mark.parametrize("engines", [("script_gguf", 512)], indirect=True)
def test_a_resumed_cache_continues_the_same(engines: tuple[LlamaEngine, LlamaEngine]) -> None:
    plain, spec = engines
    chat = chat_of(spec)
    play(chat, ["say it"])
    tokens, state = spec.cached_tokens(), spec.cache_state()
    spec.forget_cache()
    assert spec.restore_cache(tokens, state)
    resumed = play(chat, ["say it again"])[0]
    assert resumed.prompt_eval_tokens < resumed.prompt_tokens / 2
    reference = play(chat_of(plain), ["say it", "say it again"])[1]
    assert resumed.tokens == reference.tokens and resumed.accepted > 0


@pytest.fixture(scope="module")
def short_loop_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script model looping over twelve lines: its reply repeats within 40 tokens (under
    the four periods the repetition guard stops at)."""
    from tests.script_model import write_script_model

    pieces = [f"line {i} of a reply that goes on\n" for i in range(12)]
    return write_script_model(tmp_path_factory.mktemp("loop12") / "loop.gguf", pieces, loop=True)


def test_ask_json_and_config_report_drafts(short_loop_gguf: Path, tmp_path: Path) -> None:
    args = ("ask", str(short_loop_gguf), "go", "--json", "--max-tokens", "40", "--temperature", "0")
    out = json.loads(run_cli(*args, "--speculate", "lookup").stdout)
    off = json.loads(run_cli(*args, "--speculate", "off").stdout)
    assert out["text"] == off["text"] and out["completion_tokens"] == 40
    assert out["draft_accepted"] > 0 and out["draft_tokens"] >= out["draft_accepted"]
    assert off["draft_tokens"] == 0
    bad = run_cli(*args, "--speculate", "fast")
    assert bad.returncode != 0
    assert "off, lookup, auto or draft:MODEL, not 'fast'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_a_started_llama_server_reuses_its_cache_on_gemma(demo_gguf: Path) -> None:
    """Gemma 3 has sliding-window attention: without --swa-full the server re-read each
    previous reply (41 prompt tokens on turn 2 against 13 in process). Counted by the server."""
    from dataclasses import replace

    from airochat.domain.config import Settings
    from airochat.domain.engine_spec import StartedServer
    from airochat.services.launch import ChatRequest, open_chat
    from tests import llama_tools

    binary = llama_tools.build() / "llama-server"
    settings = replace(Settings(), ctx=2048, speculate="lookup", sampling=GREEDY)
    ready = open_chat(ChatRequest(StartedServer(str(demo_gguf), str(binary), ()), settings))
    try:
        assert any("--swa-full" in n and "ngram-simple" in n for n in ready.notes), ready.notes
        chat = ready.chat
        play(chat, ["Name a colour."])
        new_turn = chat.conversation.begin_turn("And another one?", ready.engine)
        second = play(chat, ["And another one?"])[0]
    finally:
        ready.close()
    assert 0 < second.prompt_eval_tokens <= len(new_turn.prompt_tokens) + 2, second


def test_bench_scenario_logs_acceptance_runs_and_what_lookup_could_predict(
    short_loop_gguf: Path,
) -> None:
    """bench --scenario: per mode the drafts, the verification batches (accepted / batches is
    the mean accepted run) and the share of reply tokens the lookup predicts right (its
    ceiling); the looping script model copies itself, so lookup can predict most of it."""
    proc = run_cli("bench", str(short_loop_gguf), "--scenario", "chat", "--reply-tokens", "40",
                   "--json", "--threads", "1", "--llama-server", "/nonexistent")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = {r["mode"]: r for r in json.loads(proc.stdout)[0]["runs"]}
    assert runs["off"]["batches"] == 0 and runs["off"]["copyable"] > 0.5
    lookup = runs["lookup"]
    assert 0 < lookup["batches"] <= lookup["accepted"] and lookup["same_text"]
    table = run_cli("bench", str(short_loop_gguf), "--scenario", "chat", "--reply-tokens", "40",
                    "--threads", "1", "--llama-server", "/nonexistent",
                    env={"COLUMNS": "200"})  # fmt: skip
    assert "kept per batch" in table.stdout and "lookup could" in table.stdout


def test_bench_scenario_repeats_each_mode_in_turn_and_reports_the_median(
    short_loop_gguf: Path,
) -> None:
    """--repeat N: every mode played N times (interleaved, so a slow minute on a shared machine
    touches all modes alike); the speed reported is the median of the N, each run's speed is
    kept, and the draft counts and text are those every repetition gives (temperature 0)."""
    proc = run_cli("bench", str(short_loop_gguf), "--scenario", "chat", "--reply-tokens", "30",
                   "--repeat", "3", "--json", "--threads", "1",
                   "--llama-server", "/nonexistent")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("(3/3)") == 3  # off, lookup, auto each played a third time
    for run in json.loads(proc.stdout)[0]["runs"]:
        speeds = run["tps_runs"]
        assert len(speeds) == 3 and all(s > 0 for s in speeds), run
        assert run["decode_tps"] == sorted(speeds)[1]
    table = run_cli("bench", str(short_loop_gguf), "--scenario", "chat", "--reply-tokens", "30",
                    "--repeat", "2", "--threads", "1", "--llama-server", "/nonexistent",
                    env={"COLUMNS": "220"})  # fmt: skip
    assert "runs' range" in table.stdout, table.stdout
    bad = run_cli("bench", str(short_loop_gguf), "--scenario", "chat", "--repeat", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def swa_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.swa_model import write_swa_model

    return write_swa_model(tmp_path_factory.mktemp("swa") / "swa.gguf", window=16)


@pytest.mark.parametrize("mode", ["lookup", "auto"])
def test_replies_past_a_sliding_window_are_the_same_text(swa_gguf: Path, mode: str) -> None:
    """Gemma 3's sliding-window cache: rejected drafts are removed at the window's edge too.
    Replies ten windows long, a chat that outgrows the context (a KV shift)."""
    plain, spec = load(swa_gguf, 384), load(swa_gguf, 384, mode)
    try:
        sampling = Sampling(temperature=0.0, max_tokens=150)
        messages = [f"tell me about the capital, part {i}" for i in range(5)]
        chat_a, chat_b = chat_of(plain, sampling), chat_of(spec, sampling)
        a, b = play(chat_a, messages), play(chat_b, messages)
        assert [d.tokens for d in a] == [d.tokens for d in b]
        assert len(chat_b.conversation.turns) < len(messages), "the context never filled"
        assert max(len(d.tokens) for d in a) > 100
        # auto drafts only where its timings say drafts pay; on this tiny model they may not
        assert mode == "auto" or sum(d.accepted for d in b) > 100
    finally:
        plain.close()
        spec.close()


def test_auto_is_the_default_and_gives_plain_decoding_s_text(short_loop_gguf: Path) -> None:
    """`auto` is the default in process (config and CLI); a started llama-server gets no
    speculation for it (its n-gram types have no back-off), and one for `lookup`."""
    from airochat.adapters.speculative_server import started_server_flags
    from airochat.domain.config import Settings

    assert Settings().speculate == "auto"
    assert started_server_flags("auto") == ("--swa-full",)
    assert started_server_flags("lookup") == ("--swa-full", "--spec-type", "ngram-simple")
    args = ("ask", str(short_loop_gguf), "go", "--json", "--max-tokens", "40", "--temperature", "0")
    default = json.loads(run_cli(*args).stdout)
    off = json.loads(run_cli(*args, "--speculate", "off").stdout)
    assert default["text"] == off["text"] and default["completion_tokens"] == 40
