"""Consent in a real pseudo-terminal: `ask --plan` asks before each step that runs a command
(yes / no / all), and the REPL's `/plan` and `/call` ask on the input line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import airochat_exe
from tests.rec_tool import __file__ as REC
from tests.screen import Screen
from tests.script_model import write_script_model

PLAN = ":evidence0: = Echo[one]\n:evidence1: = Echo[two :evidence0:]\nAnswer: :evidence1:"


def _files(tmp_path: Path, reply: str) -> tuple[Path, Path]:
    model = write_script_model(tmp_path / "m.gguf", [line + "\n" for line in reply.splitlines()])
    tools = tmp_path / "tools.yaml"
    tools.write_text(
        "tools:\n  - name: Echo\n    description: Records.\n"
        f"    command: [{sys.executable!r}, {REC!r}, '{{input}}']\n"
    )
    return model, tools


def _ask(model: Path, tools: Path, rec: Path) -> pexpect.spawn:
    env = {**os.environ, "REC_FILE": str(rec), "TERM": "xterm-256color"}
    return pexpect.spawn(
        airochat_exe(),
        ["ask", str(model), "--plan", "q?", "--tools", str(tools), "--threads", "1"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )


def _argv(rec: Path) -> list[list[str]]:
    if not rec.exists():
        return []
    return [json.loads(line)["argv"] for line in rec.read_text().splitlines()]


def test_yes_then_no_stops_the_plan(tmp_path: Path) -> None:
    model, tools = _files(tmp_path, PLAN)
    rec = tmp_path / "rec.jsonl"
    child = _ask(model, tools, rec)
    child.expect_exact("run ")
    child.expect_exact("allow? [y]es / [n]o / [a]ll for this plan")
    child.sendline("y")
    child.expect_exact("allow?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "the plan stopped at :evidence1: (Echo): not allowed" in child.before
    assert _argv(rec) == [["one"]]


def test_all_allows_the_rest_of_the_plan(tmp_path: Path) -> None:
    model, tools = _files(tmp_path, PLAN)
    rec = tmp_path / "rec.jsonl"
    child = _ask(model, tools, rec)
    child.expect_exact("allow?")
    child.sendline("a")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert child.before.count("allow?") == 0  # asked once
    assert _argv(rec) == [["one"], ["two got 1 argument(s): ['one']"]]


def test_repl_plan_asks_on_the_input_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tools = _files(tmp_path, PLAN)
    rec = tmp_path / "rec.jsonl"
    monkeypatch.setenv("REC_FILE", str(rec))  # the REPL child inherits it
    s = Screen(str(model), "--tools", str(tools), "--threads", "1", "--no-input-history")
    try:
        s.child.expect_exact(">>>")
        s.child.send("/plan q?\r")
        s.child.expect_exact("step :evidence0: command:")
        s.child.expect_exact(">>>")
        s.child.send("a\r")
        s.child.expect_exact('got 1 argument(s): ["two got 1 argument(s)')
        s.child.expect_exact(">>>")
        assert _argv(rec) == [["one"], ["two got 1 argument(s): ['one']"]]
        s.child.send("/exit\r")
        s.child.expect(pexpect.EOF)
    finally:
        s.close()


def test_repl_call_runs_the_chosen_function_after_a_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = json.dumps({"function": "echo", "params": {"word": "$(id)"}})
    model = write_script_model(tmp_path / "c.gguf", [reply])
    functions = tmp_path / "f.yaml"
    functions.write_text(
        "echo:\n  description: Echoes.\n  params: {word: a word}\n"
        f"  command: [{sys.executable!r}, {REC!r}, '{{word}}']\n"
    )
    rec = tmp_path / "rec.jsonl"
    monkeypatch.setenv("REC_FILE", str(rec))
    s = Screen(str(model), "--threads", "1", "--no-input-history")
    try:
        s.child.expect_exact(">>>")
        s.child.send(f"/call {functions}\r")
        s.child.expect_exact("your next message chooses one")
        s.child.send("echo my id\r")
        s.child.expect_exact("allow?")
        s.child.send("y\r")
        s.child.expect_exact("got 1 argument(s): ['$(id)']")
        assert _argv(rec) == [["$(id)"]]
    finally:
        s.close()


def test_a_tool_s_output_never_controls_the_terminal(tmp_path: Path) -> None:
    """On a terminal the answer and the step lines show a tool's escapes and bidi controls;
    read from the raw bytes (rich's own colours are ESC too, so the tool's are looked for)."""
    reply = ":evidence0: = Echo[esc]\n:evidence1: = Echo[:evidence0:]\nAnswer: :evidence0:"
    model, tools = _files(tmp_path, reply)
    rec = tmp_path / "rec.jsonl"
    child = _ask(model, tools, rec)
    for _ in range(2):
        child.expect_exact("allow?")
        child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    raw = child.before
    assert child.exitstatus == 0, raw
    assert "\x1b]0;owned" not in raw and "\x9b" not in raw and "\u202e" not in raw
    assert raw.count("\\x1b]0;owned\\x07\\x1b[31mRED\\x1b[0m \\x9b2J <U+202E>evil") == 2
