"""The real REPL in a pseudo-terminal: typing, Alt+Enter, paste, slash commands, Ctrl-C, Ctrl-D."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import airochat_exe

PROMPT = ">>>"
STATS = re.compile(r"tok/s")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r")


def spawn(*args: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        airochat_exe(),
        ["run", *args],
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(50, 200),
    )
    child.expect_exact(PROMPT)
    return child


@pytest.fixture
def tiny_repl(tiny_gguf: Path) -> Iterator[pexpect.spawn]:
    child = spawn(
        str(tiny_gguf),
        "--max-tokens",
        "5",
        "--temperature",
        "0",
        "--threads",
        "1",
        "--system",
        "S.",
    )
    yield child
    child.close(force=True)


def show_prompt(child: pexpect.spawn) -> str:
    """Run /prompt and return what it printed (synced on its output, not on a redraw)."""
    child.send("/prompt\r")
    child.expect("USER:")
    head = "USER:"
    child.expect_exact(PROMPT)
    return ANSI.sub("", head + (child.before or "")).split("USER:", 1)[1]


def send_message(child: pexpect.spawn, text: str) -> None:
    child.send(text + "\r")
    child.expect(STATS)
    child.expect_exact(PROMPT)


def test_alt_enter_adds_a_line_and_prompt_shows_it(tiny_repl: pexpect.spawn) -> None:
    tiny_repl.send("hello")
    tiny_repl.send("\x1b\r")  # Alt+Enter: Esc then Enter
    send_message(tiny_repl, "world")
    text = "USER:" + show_prompt(tiny_repl)
    assert text.startswith("USER: hello\nworld ASSISTANT: ")  # one message, two lines
    assert text.rstrip().endswith("</s>")


def test_paste_stays_one_message(tiny_repl: pexpect.spawn) -> None:
    tiny_repl.send("\x1b[200~line one\nline two\x1b[201~")
    send_message(tiny_repl, "")
    text = "USER:" + show_prompt(tiny_repl)
    assert text.count("USER:") == 1
    assert "line two ASSISTANT: " in text


def test_memory_then_ctrl_d_exits_zero(tiny_repl: pexpect.spawn) -> None:
    send_message(tiny_repl, "hello")
    send_message(tiny_repl, "world")
    text = "USER:" + show_prompt(tiny_repl)
    assert text.count("USER:") == 2 and text.count("</s>") == 2
    tiny_repl.sendcontrol("d")
    tiny_repl.expect(pexpect.EOF)
    tiny_repl.close()
    assert tiny_repl.exitstatus == 0


def test_no_history_prompt_shows_latest_exchange_only(tiny_gguf: Path) -> None:
    child = spawn(
        str(tiny_gguf), "--max-tokens", "3", "--temperature", "0", "--no-history", "--system", "S."
    )
    send_message(child, "first")
    send_message(child, "second")
    text = "USER:" + show_prompt(child)
    assert text.startswith("USER: second ASSISTANT: ") and "first" not in text
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_unknown_command_hints_and_ctrl_c_at_prompt(tiny_repl: pexpect.spawn) -> None:
    tiny_repl.send("/frobnicate\r")
    tiny_repl.expect("unknown command /frobnicate")
    tiny_repl.expect_exact(PROMPT)
    tiny_repl.send("half typed")
    tiny_repl.sendcontrol("c")
    tiny_repl.expect("Ctrl-D or /exit leaves")
    tiny_repl.expect_exact(PROMPT)
    tiny_repl.send("/help\r")
    tiny_repl.expect("/prompt")
    tiny_repl.expect_exact(PROMPT)


def test_context_command_wraps_next_message(tiny_repl: pexpect.spawn, tmp_path: Path) -> None:
    doc = tmp_path / "facts.txt"
    doc.write_text("The sky is green.")
    tiny_repl.send(f"/context {doc}\r")
    tiny_repl.expect("1 document")
    tiny_repl.expect_exact(PROMPT)
    send_message(tiny_repl, "What colour is the sky?")
    text = "USER:" + show_prompt(tiny_repl)
    assert text.startswith("USER: BEGININPUT\nBEGINCONTEXT\nsource: facts.txt\ndate: ")
    assert "The sky is green.\nENDINPUT\nBEGININSTRUCTION\nWhat colour is the sky?\n" in text
    send_message(tiny_repl, "And now?")  # staged documents apply once
    assert "USER: And now? ASSISTANT:" in show_prompt(tiny_repl)


@pytest.mark.slow
def test_demo_model_chat_ctrl_c_mid_reply_then_next_turn(demo_gguf: Path) -> None:
    child = spawn(
        "gemma3-270m",
        "--max-tokens",
        "2000",
        "--threads",
        "1",
        "--seed",
        "3",
        "--temperature",
        "0.8",
    )
    # A base model may end a reply early; try a few messages until one is cut mid-stream.
    for attempt in range(4):
        child.send(f"Count from 1 to 500, separated by commas. ({attempt})\r")
        child.expect_exact(f"({attempt})")  # the echo of what we typed
        child.expect(r"\n[^\n]*\w{2,}")  # then reply text streaming
        time.sleep(0.5)  # a person's reaction time; the tty is cooked again by then
        child.sendcontrol("c")
        if child.expect([r"\[reply stopped\]", STATS], timeout=10) == 0:
            break
        child.expect_exact(PROMPT)
    else:
        pytest.fail("no reply was long enough to interrupt")
    child.expect_exact(PROMPT)
    assert "</s>" in show_prompt(child)  # the cut reply stays in the chat, closed by EOS
    send_message(child, "Thanks!")  # and the next turn works
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
