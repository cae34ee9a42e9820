"""A reply looping on the same text is stopped, for any model, and the stats line says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airochat.domain.repetition import RepetitionGuard, looping
from tests.conftest import run_cli
from tests.screen import Screen
from tests.script_model import write_script_model

LIST = "".join(f"{i}. Item number {i} of the list, with words.\n" for i in range(1, 60))
TABLE = "| a | b |\n|---|---|\n" + "".join(f"| {i} | {i * i} |\n" for i in range(80))
CODE = "".join(f"    x{i} = compute(x{i - 1}, step={i})\n" for i in range(1, 40))


def test_a_loop_is_seen_and_text_that_only_looks_alike_is_not() -> None:
    assert looping("The answer. " + "la Femme, " * 30)
    assert looping("Intro.\n" + "I am here to help you with anything.\n" * 8)
    assert looping("=" * 300)
    for text in (LIST, TABLE, CODE, "Short. " * 10, "-" * 100):
        assert not looping(text), text[:40]


def test_the_guard_stops_once_and_says_repeated() -> None:
    from airochat.domain.events import Done

    guard, stops = RepetitionGuard(), []
    for _ in range(100):
        guard.watch("la Femme, ", lambda: stops.append(1))
    assert stops == [1] and guard.done(Done("interrupted", "x")).finish_reason == "repeated"
    assert RepetitionGuard().done(Done("interrupted", "x")).finish_reason == "interrupted"


@pytest.fixture(scope="module")
def loop_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that writes "la Femme, " for ever, as SmolLM2 did when asked for a capital."""
    return write_script_model(
        tmp_path_factory.mktemp("loop") / "femme.gguf", ["la Femme, "], loop=True
    )


GREEDY = ("--temperature", "0", "--threads", "1", "--max-tokens", "3000")


def test_ask_stops_a_looping_reply_early(loop_gguf: Path) -> None:
    proc = run_cli("ask", str(loop_gguf), "hi", "--json", *GREEDY)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["finish_reason"] == "repeated" and out["completion_tokens"] < 100


def test_the_repl_says_it_stopped_a_loop(loop_gguf: Path) -> None:
    s = Screen(str(loop_gguf), *GREEDY, "--no-input-history")
    try:
        s.child.expect_exact(">>>")
        s.child.send("hi\r")
        s.child.expect("repeating itself")
        s.child.expect_exact(">>>")
        assert "[reply stopped]" not in s.text()  # nobody pressed Ctrl-C
    finally:
        s.close()
