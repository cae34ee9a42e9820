"""`ask` end to end for each prompt mode: --print-prompt never generates; the demo answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

GREEDY = ("--temperature", "0", "--seed", "1", "--threads", "1")


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    f = tmp_path / "berries.txt"
    f.write_text("Blueberries are now green.\n")
    os.utime(f, (1_600_000_000, 1_600_000_000))
    return f


def test_context_print_prompt(tiny_gguf: Path, doc: Path) -> None:
    proc = run_cli(
        "ask",
        str(tiny_gguf),
        "What color are blueberries?",
        "--context",
        str(doc),
        "--meta",
        "url=https://example.org",
        "--no-guess",
        "--print-prompt",
        "--system",
        "S.",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "S. USER: BEGININPUT\nBEGINCONTEXT\nsource: berries.txt\ndate: 2020-09-13\n"
        "url: https://example.org\nENDCONTEXT\nBlueberries are now green.\nENDINPUT\n"
        "BEGININSTRUCTION\nWhat color are blueberries?\n"
        "Don't make up answers if you don't know.\nENDINSTRUCTION ASSISTANT: \n"
    )


def test_context_from_stdin(tiny_gguf: Path) -> None:
    proc = run_cli(
        "ask",
        str(tiny_gguf),
        "Summarise.",
        "--context",
        "-",
        "--print-prompt",
        "--json",
        stdin="Piped text.",
    )
    prompt = json.loads(proc.stdout)["prompt"]
    assert "BEGINCONTEXT\nsource: stdin\nENDCONTEXT\nPiped text.\nENDINPUT\n" in prompt


def test_plain_print_prompt(tiny_gguf: Path) -> None:
    proc = run_cli(
        "ask", str(tiny_gguf), "Hello world in C.", "--plain", "--print-prompt", "--system", "S."
    )
    assert proc.stdout == "S. USER: Hello world in C. PLAINFORMAT ASSISTANT: \n"


def test_functions_print_prompt_and_bad_reply(tiny_gguf: Path, tmp_path: Path) -> None:
    f = tmp_path / "fn.yaml"
    f.write_text("search:\n  description: Web search.\n  params:\n    q: the query\n")
    proc = run_cli("ask", str(tiny_gguf), "find cats", "--functions", str(f), "--print-prompt")
    assert "Input: find cats\n\nAvailable functions:\nsearch:\n" in proc.stdout
    # the tiny random model cannot answer with a call: a clear error with the raw text
    proc = run_cli(
        "ask", str(tiny_gguf), "find cats", "--functions", str(f), "--max-tokens", "4", *GREEDY
    )
    assert proc.returncode == 1
    assert "not a function call in JSON or YAML" in proc.stderr and proc.stdout == ""


def test_meta_without_context_is_usage_error(tiny_gguf: Path) -> None:
    proc = run_cli("ask", str(tiny_gguf), "q", "--meta", "a=b", "--print-prompt")
    assert proc.returncode == 2 and "--meta and --no-guess go with --context" in proc.stderr


@pytest.mark.slow
def test_demo_answers_each_mode(demo_gguf: Path, doc: Path) -> None:
    base = ("ask", "gemma3-270m", "--max-tokens", "8", *GREEDY)
    out = json.loads(
        run_cli(*base, "What color are blueberries?", "--context", str(doc), "--json").stdout
    )
    assert out["prompt_tokens"] > 60 and out["finish_reason"] in ("stop", "length")
    proc = run_cli(*base, "--plain", "--json", stdin="Write hello world in Python.")
    assert proc.returncode == 0 and json.loads(proc.stdout)["completion_tokens"] >= 1
