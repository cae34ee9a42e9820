"""--speculate draft:MODEL: a second model of the same vocabulary drafts, the target verifies.

On the generated models no near-tie exists, so the text must be the target's own token for
token: with the target itself as the draft (every draft kept) and with a 1-layer twin of the
same vocabulary (most drafts refused), across a multi-turn chat and a KV shift past the context
limit. A draft model of another vocabulary is refused before anything loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airochat.adapters.gguf_file import read_header
from airochat.adapters.llama_draft import DraftSpeculator
from airochat.adapters.llama_engine import LlamaEngine, LoadOptions
from airochat.adapters.speculative_server import started_server_flags
from airochat.domain.config import Sampling
from airochat.services.draft_model import vocabulary_difference
from tests.conftest import run_cli
from tests.test_speculate import chat_of, play
from tests.tiny_model import write_tiny_llama


@pytest.fixture(scope="module")
def twin_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's vocabulary, one layer of other random weights: a poor draft."""
    return write_tiny_llama(tmp_path_factory.mktemp("twin") / "twin.gguf", n_layer=1, seed=7)


@pytest.fixture(scope="module")
def script_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.script_model import write_script_model

    pieces = [f"line {i} of a reply that goes on\n" for i in range(12)]
    path = tmp_path_factory.mktemp("dscript") / "loop.gguf"
    return write_script_model(path, pieces, loop=True)


def load(path: Path, n_ctx: int, draft: Path | None = None) -> LlamaEngine:
    engine = LlamaEngine.load(LoadOptions(path=path, n_ctx=n_ctx, n_threads=1))
    if draft is not None:
        drafter = LlamaEngine.load(LoadOptions(path=draft, n_ctx=n_ctx, n_threads=1))
        engine.speculator = DraftSpeculator(drafter, draft.name)
    return engine


@pytest.fixture
def pair(request: pytest.FixtureRequest, tiny_gguf: Path) -> Iterator[tuple[LlamaEngine, ...]]:
    draft = request.getfixturevalue(request.param) if request.param else tiny_gguf
    plain, spec = load(tiny_gguf, 256), load(tiny_gguf, 256, draft)
    yield plain, spec
    plain.close()
    spec.close()


@pytest.mark.parametrize("pair", ["", "twin_gguf"], indirect=True, ids=["itself", "twin"])
def test_a_long_chat_past_the_context_limit_is_the_targets_text(
    pair: tuple[LlamaEngine, LlamaEngine],
) -> None:
    plain, spec = pair
    messages = [f"tell me about the capital, part {i}" for i in range(16)]
    sampling = Sampling(temperature=0.0, max_tokens=12)
    chat_a, chat_b = chat_of(plain, sampling), chat_of(spec, sampling)
    a, b = play(chat_a, messages), play(chat_b, messages)
    assert [d.tokens for d in a] == [d.tokens for d in b]
    assert len(chat_b.conversation.turns) < len(messages), "the context never filled"
    drafted, accepted = sum(d.drafted for d in b), sum(d.accepted for d in b)
    assert drafted > 0 and all(d.drafted >= d.accepted for d in b)
    speculator = spec.speculator
    assert isinstance(speculator, DraftSpeculator)
    if speculator.name == "tiny-llama.gguf":
        assert accepted == drafted  # the target drafting for itself is always right
    else:
        assert accepted < drafted  # the twin is a poor guesser: refused drafts were removed
    # The draft's cache followed the shifts: it holds a prefix of the chat, and it read what
    # the target read plus the reply and the drafts -- not the chat again after each shift
    # (2,586 tokens read, against 922, when it did).
    drafter = speculator.drafter
    tokens = chat_b.conversation.tokens()
    assert drafter.cached == tokens[: len(drafter.cached)] and len(drafter.cached) > 100
    target_read = sum(d.prompt_eval_tokens for d in b)
    assert drafter.read <= target_read + sum(len(d.tokens) + d.drafted for d in b)


def test_another_vocabulary_is_told_apart(tiny_gguf: Path, twin_gguf: Path,
                                          script_gguf: Path) -> None:  # fmt: skip
    tiny, twin, script = (read_header(p) for p in (tiny_gguf, twin_gguf, script_gguf))
    assert vocabulary_difference(tiny, twin) is None
    assert vocabulary_difference(tiny, script) == f"{script.n_vocab} tokens against {tiny.n_vocab}"
    assert tiny.vocab_sha256 and tiny.vocab_sha256 != script.vocab_sha256


def test_ask_with_a_draft_model_reports_drafts(script_gguf: Path, tiny_gguf: Path) -> None:
    args = ("ask", str(script_gguf), "go", "--json", "--max-tokens", "40", "--temperature", "0")
    off = json.loads(run_cli(*args, "--threads", "1").stdout)
    done = run_cli(*args, "--threads", "1", "--speculate", f"draft:{script_gguf}")
    out = json.loads(done.stdout)
    assert out["text"] == off["text"] and out["completion_tokens"] == 40
    assert out["draft_tokens"] >= 30 and out["draft_accepted"] == out["draft_tokens"]
    refused = run_cli(*args, "--speculate", f"draft:{tiny_gguf}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    n_tiny, n_script = read_header(tiny_gguf).n_vocab, read_header(script_gguf).n_vocab
    why = f"draft model tiny-llama.gguf has another vocabulary than loop.gguf ({n_tiny} tokens"
    assert refused.stderr.strip().splitlines()[-1].endswith(f"{why} against {n_script})")


def test_a_started_llama_server_gets_the_draft_model() -> None:
    flags = started_server_flags("draft:small", "/models/small.gguf")
    assert flags[:1] == ("--swa-full",)
    assert flags[flags.index("-md") + 1] == "/models/small.gguf"
    assert flags[flags.index("--spec-type") + 1] == "draft-simple"


def test_the_repl_shows_drafts_in_the_stats_line_and_stats(script_gguf: Path) -> None:
    from tests.test_repl import PROMPT, spawn

    child = spawn(str(script_gguf), "--max-tokens", "40", "--temperature", "0", "--threads",
                  "1", "--speculate", f"draft:{script_gguf}", "--no-input-history")  # fmt: skip
    try:
        child.send("go\r")
        child.expect(r"40 tokens · [^\n]* · drafts: (\d+) of (\d+) accepted")
        kept, drafted = (int(g) for g in child.match.groups())
        assert 30 <= kept == drafted < 40
        child.expect_exact(PROMPT)
        child.send("/stats\r")
        child.expect(rf"ended: length · drafts: {kept} of {drafted} accepted")
    finally:
        child.close(force=True)


def test_bench_scenario_measures_the_draft_model_beside_lookup(script_gguf: Path) -> None:
    proc = run_cli("bench", str(script_gguf), "--scenario", "chat", "--reply-tokens", "30",
                   "--json", "--threads", "1", "--llama-server", "/nonexistent",
                   "--speculate", f"draft:{script_gguf}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = {r["mode"]: r for r in json.loads(proc.stdout)[0]["runs"]}
    assert set(runs) == {"off", "lookup", "auto", "draft:loop.gguf"}
    drafted = runs["draft:loop.gguf"]
    assert drafted["same_text"] and drafted["accepted"] == drafted["drafted"] > 30


def test_a_stop_in_the_middle_of_a_drafted_batch_keeps_both_caches_true(
    looping_gguf: Path,
) -> None:
    from airochat.domain.events import Done, TextChunk

    plain, spec = load(looping_gguf, 512), load(looping_gguf, 512, looping_gguf)
    try:
        sampling = Sampling(temperature=0.0, max_tokens=200)
        chat = chat_of(spec, sampling)
        seen, done = 0, None
        for event in chat.send("go"):
            seen += isinstance(event, TextChunk)
            if seen == 9:
                spec.request_stop()
            if isinstance(event, Done):
                done = event
        assert done is not None and done.finish_reason == "interrupted" and done.accepted > 0
        tokens = chat.conversation.tokens()
        cached = spec.cached_tokens()
        assert cached == tokens[: len(cached)] and len(cached) >= len(tokens) - 3
        speculator = spec.speculator
        assert isinstance(speculator, DraftSpeculator)
        # The draft's cache holds the kept reply; what it drafted past the stop is matched
        # away before its next draft (the next turn drafts from a true cache).
        n = len(cached) - 1
        assert speculator.drafter.cached[:n] == tokens[:n]
        after = play(chat, ["and again"])[0]
        prompt = chat.conversation.tokens()[: -len(after.tokens) - 1]
        cold = next(e for e in plain.generate(prompt, sampling) if isinstance(e, Done))
        assert after.tokens == cold.tokens and after.accepted > 0
    finally:
        plain.close()
        spec.close()


def test_a_stop_while_the_draft_model_reads_a_long_prompt_ends_the_read_mid_chunk(
    smollm2_gguf: Path,
) -> None:
    """The draft model catches up with the chat before its first draft: a 1,400-token prompt
    is three reads of up to 512 tokens. A stop during the second ends that read inside
    llama.cpp (the draft's own abort hook), not after the last chunk, and its cache stays a
    prefix of the chat, so the next reply drafts from a true cache."""
    import threading

    from airochat.domain.bench_texts import HARBOUR
    from airochat.domain.events import Done

    spec = LlamaEngine.load(LoadOptions(path=smollm2_gguf, n_ctx=2048, n_threads=2))
    drafting = LlamaEngine.load(LoadOptions(path=smollm2_gguf, n_ctx=2048, n_threads=2))
    spec.speculator = DraftSpeculator(drafting, smollm2_gguf.name)
    try:
        speculator = spec.speculator
        assert isinstance(speculator, DraftSpeculator)
        drafter = speculator.drafter
        prompt = (spec.tokenize_text(HARBOUR) * 2)[:1400]

        def stop_in_the_second_chunk() -> None:
            while drafter.read < drafter.n_batch:  # the first chunk is read
                threading.Event().wait(0.005)
            spec.request_stop()

        watcher = threading.Thread(target=stop_in_the_second_chunk, daemon=True)
        watcher.start()
        sampling = Sampling(temperature=0.0, max_tokens=20)
        done = next(e for e in spec.generate(prompt, sampling) if isinstance(e, Done))
        watcher.join(5)
        assert done.finish_reason == "interrupted", done
        assert drafter.n_batch <= drafter.read < 2 * drafter.n_batch, drafter.read
        assert drafter.cached == prompt[: len(drafter.cached)]
        again = next(e for e in spec.generate(prompt, sampling) if isinstance(e, Done))
        assert again.finish_reason in ("length", "stop") and again.accepted > 0
    finally:
        spec.close()
