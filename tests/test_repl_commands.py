"""Issue-5 REPL behaviour in a real pseudo-terminal: commands, fences, history, completion,
long chats, sessions."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.test_repl import PROMPT, STATS, send_message, show_prompt, spawn

BASE = ("--max-tokens", "4", "--temperature", "0", "--threads", "1", "--system", "S.")


@pytest.fixture
def repl(tiny_gguf: Path) -> Iterator[pexpect.spawn]:
    child = spawn(str(tiny_gguf), *BASE)
    yield child
    child.close(force=True)


def command(child: pexpect.spawn, line: str, expect: str) -> None:
    child.send(line + "\r")
    child.expect(expect)
    child.expect_exact(PROMPT)


def test_fenced_message_is_one_message(repl: pexpect.spawn) -> None:
    repl.send('"""\r')  # Enter inside an open fence adds a line
    repl.send("first line\r")
    repl.send("second line\r")
    send_message(repl, '"""')
    text = show_prompt(repl)
    assert text.startswith(" first line\nsecond line ASSISTANT: ")


def test_multiline_mode_flips_enter(tiny_gguf: Path) -> None:
    child = spawn(str(tiny_gguf), *BASE, "--multiline")
    child.send("one\r")  # Enter: new line
    child.send("two")
    child.send("\x1b\r")  # Alt+Enter: send
    child.expect(STATS)
    child.expect_exact(PROMPT)
    assert show_prompt(child).startswith(" one\ntwo ASSISTANT: ")
    child.close(force=True)


def test_undo_regen_and_stats(repl: pexpect.spawn) -> None:
    send_message(repl, "hello")
    send_message(repl, "world")
    command(repl, "/undo", "Dropped: world")
    text = "USER:" + show_prompt(repl)
    assert text.count("USER:") == 1 and "world" not in text
    repl.send("/regen\r")
    repl.expect(STATS)
    repl.expect_exact(PROMPT)
    assert ("USER:" + show_prompt(repl)).count("USER: hello ASSISTANT:") == 1
    command(repl, "/stats", r"context \d+ of 512 tokens")


def test_edit_with_editor(tiny_gguf: Path, tmp_path: Path) -> None:
    editor = tmp_path / "ed.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/hello/goodbye/' \"$1\"\n")
    editor.chmod(0o755)
    os.environ["EDITOR"] = str(editor)
    try:
        child = spawn(str(tiny_gguf), *BASE)
    finally:
        del os.environ["EDITOR"]
    send_message(child, "hello there")
    child.send("/edit\r")
    child.expect(STATS)
    child.expect_exact(PROMPT)
    text = show_prompt(child)
    assert "goodbye there ASSISTANT:" in text and "hello" not in text
    child.close(force=True)


def test_edit_inline_prefills_the_prompt(repl: pexpect.spawn) -> None:
    send_message(repl, "hello")
    repl.send("/edit\r")
    repl.expect_exact(PROMPT)
    repl.send(" again")  # cursor sits after the prefilled text
    send_message(repl, "")
    text = "USER:" + show_prompt(repl)
    assert text.count("USER:") == 1 and "USER: hello again ASSISTANT:" in text


def test_system_set_show(repl: pexpect.spawn) -> None:
    command(repl, "/system", "S.")
    command(repl, "/system Be brief.", "System prompt set")
    send_message(repl, "hello")
    assert show_prompt(repl) == " hello ASSISTANT: " + show_prompt(repl).split("ASSISTANT: ", 1)[1]
    command(repl, "/set temperature 0.9", "temperature = 0.9")
    command(repl, "/set top_k nope", "top_k takes a number")
    command(repl, "/set template vicuna-1.1", "template = vicuna-1.1")
    command(repl, "/set history off", "history = off")
    command(repl, "/show", r"temperature = 0\.9[\s\S]*template = vicuna-1\.1[\s\S]*history = off")
    command(repl, "/set colour blue", "unknown setting 'colour'")


def test_read_file(repl: pexpect.spawn, tmp_path: Path) -> None:
    f = tmp_path / "msg.txt"
    f.write_text("from a file\nline two")
    repl.send(f"/read {f}\r")
    repl.expect(STATS)
    repl.expect_exact(PROMPT)
    assert "USER: from a file\nline two ASSISTANT:" in "USER:" + show_prompt(repl)
    command(repl, f"/read {tmp_path / 'missing.txt'}", "no such context file")


def test_tab_completes_commands_and_paths(repl: pexpect.spawn, tmp_path: Path) -> None:
    (tmp_path / "saved-chat.json").write_text("{}")
    repl.send("/syst\t")
    repl.expect("/system")
    repl.sendcontrol("c")
    repl.expect_exact(PROMPT)
    repl.send(f"/load {tmp_path}/saved-c\t")
    repl.expect(r"hat\.json")  # the redraw writes only the completed remainder
    repl.sendcontrol("c")
    repl.expect_exact(PROMPT)


def test_input_history_file_and_up_arrow(tiny_gguf: Path, isolated_dirs: Path) -> None:
    child = spawn(str(tiny_gguf), *BASE)
    send_message(child, "remember me")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    hist = isolated_dirs / "data" / "airochat" / "input_history"
    assert "remember me" in hist.read_text()
    assert stat.S_IMODE(hist.stat().st_mode) == 0o600
    child = spawn(str(tiny_gguf), *BASE)
    child.send("\x1b[A")  # Up: the last line from the previous session
    child.expect("remember me")
    child.close(force=True)
    child = spawn(str(tiny_gguf), *BASE, "--no-input-history")
    send_message(child, "secret")
    child.close(force=True)
    assert "secret" not in hist.read_text()


def test_long_chat_drops_oldest_and_oversized_message_survives(tiny_gguf: Path) -> None:
    child = spawn(
        str(tiny_gguf),
        "--ctx",
        "80",
        "--max-tokens",
        "8",
        "--temperature",
        "0",
        "--threads",
        "1",
        "--system",
        "S.",
    )
    for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"):
        child.send(f"{word} {word} {word}\r")
        idx = child.expect(["dropped the", STATS])
        if idx == 0:
            break
        child.expect_exact(PROMPT)
    else:
        pytest.fail("the context never filled")
    child.expect(STATS)
    child.expect_exact(PROMPT)
    text = show_prompt(child)
    assert "alpha" not in text and text.startswith(" ")  # oldest gone; system still opens it
    command(child, "hello " * 60, "this message is \\d+ tokens")
    send_message(child, "still here")  # the chat survives
    child.close(force=True)


def test_session_save_kill_load(tiny_gguf: Path, tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    child = spawn(str(tiny_gguf), *BASE, "--session", str(path))
    send_message(child, "first message")
    send_message(child, "second message")
    child.kill(9)  # no clean exit: autosave must already hold both turns
    child.close(force=True)
    data = json.loads(path.read_text())
    assert [t["message"] for t in data["turns"]] == ["first message", "second message"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    child = spawn(str(tiny_gguf), *BASE, "--session", str(path))
    text = show_prompt(child)
    assert "first message" in text and "second message" in text
    other = tmp_path / "copy.json"
    command(child, f"/save {other}", "Saved 2 exchange")
    command(child, "/reset", "New chat")
    command(child, f"/load {other}", "Loaded 2 exchange")
    assert "second message" in show_prompt(child)
    child.close(force=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "airochat-session", "version": 1, "turns": [', "corrupt or truncated"),
        ('{"schema": "airochat-session", "version": 99, "turns": []}', "newer airochat"),
        ('{"hello": 1}', "not an airochat session file"),
    ],
)
def test_bad_session_file_is_refused_and_untouched(
    tiny_gguf: Path, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "chat.json"
    path.write_text(content)
    child = spawn(str(tiny_gguf), *BASE)
    command(child, f"/load {path}", message)
    child.close(force=True)
    from tests.conftest import run_cli

    proc = run_cli("ask", str(tiny_gguf), "hi", "--session", str(path))
    assert proc.returncode == 1 and message.split()[0] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert path.read_text() == content  # left untouched
