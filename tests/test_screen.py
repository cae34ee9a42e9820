"""What a person sees and keeps, in a real pseudo-terminal at 80 columns (pyte reads the screen).
Each test here failed before its fix (the defects issue, items 1-5)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.screen import Screen
from tests.script_model import write_script_model

REPLY = [
    "Here is a list:\n\n",
    "1. The first item is long enough that it must wrap at eighty columns on any terminal.\n",
    "2. Second item with <i>Hey</i> in it and [a link](https://example.org/x)\n\n",
    "> A quote that is also quite long, long enough to wrap at the edge of the screen.\n\n",
    "Done.",
]
REPLY_TEXT = "".join(REPLY)
BASE = ("--temperature", "0", "--system", "S.", "--threads", "1", "--no-input-history")


@pytest.fixture(scope="module")
def script_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_script_model(tmp_path_factory.mktemp("script") / "script.gguf", REPLY)


@pytest.fixture
def screen(script_gguf: Path) -> Iterator[Screen]:
    s = Screen(str(script_gguf), *BASE)
    s.child.expect_exact(">>>")
    yield s
    s.close()


def turn(s: Screen, text: str) -> None:
    s.child.send(text + "\r")
    s.child.expect("tok/s")
    s.child.expect_exact(">>>")


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9<>/:.]+", text)


@pytest.mark.parametrize("plain", [False, True], ids=["markdown", "plain"])
def test_every_word_of_the_reply_is_on_screen_wrapped(script_gguf: Path, plain: bool) -> None:
    """Item 1: lists and quotes were cropped to their first line (rich soft wrap) and text
    that looks like HTML vanished. Every word must be on screen, in order, within 80 columns."""
    s = Screen(str(script_gguf), *BASE, *(["--plain-output"] if plain else []))
    try:
        s.child.expect_exact(">>>")
        turn(s, "hi")
        screen = s.text()
        shown = screen.split(">>> hi", 1)[1].split(" tokens · ")[0]
        source = REPLY_TEXT if plain else REPLY_TEXT.replace("\n> ", "\n")
        expected = words(
            source.replace("[a link](https://example.org/x)", "a link (https://example.org/x)")
        )
        assert _in_order(expected, words(shown)), (expected, shown)
        assert "<i>Hey</i>" in shown and "https://example.org/x" in shown
        assert "1. The first item" in shown and "2. Second item" in shown
        assert all(len(line) <= 80 for line in s.lines())
    finally:
        s.close()


def _in_order(expected: list[str], shown: list[str]) -> bool:
    it = iter(shown)
    return all(any(w == x for x in it) for w in expected)


def test_oversized_message_keeps_the_chat_and_the_session(tiny_gguf: Path, tmp_path: Path) -> None:
    """Item 2: a message refused as too big for the context used to wipe the chat, and the
    next autosave wrote the emptied chat over the session file."""
    session = tmp_path / "s.json"
    s = Screen(
        str(tiny_gguf), *BASE, "--ctx", "128", "--max-tokens", "4", "--session", str(session)
    )
    try:
        s.child.expect_exact(">>>")
        turn(s, "hello")
        turn(s, "world")
        s.child.send("word " * 200 + "\r")
        s.child.expect("the context holds")
        s.child.expect_exact(">>>")
        s.child.send("/prompt\r")
        s.child.expect("USER: world ASSISTANT:")
        s.child.expect_exact(">>>")
        assert len(json.loads(session.read_text())["turns"]) == 2
        s.child.send("/undo\r")
        s.child.expect("Dropped: world")
        s.child.expect_exact(">>>")
    finally:
        s.close()


def test_settings_are_saved_and_flags_win_on_resume(tiny_gguf: Path, tmp_path: Path) -> None:
    """Item 3: /set and /system after the last turn were lost at Ctrl-D, and options given
    with --session on resume were silently ignored."""
    session = tmp_path / "s.json"
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "4", "--session", str(session))
    s.child.expect_exact(">>>")
    turn(s, "hello")
    s.child.send("/set max_tokens 7\r")
    s.child.expect_exact(">>>")
    s.child.send("/system Be brief.\r")
    s.child.expect("System prompt set")
    s.child.expect_exact(">>>")
    s.child.sendcontrol("d")
    s.child.expect(r"\$|$")
    s.child.wait()
    data = json.loads(session.read_text())
    assert data["sampling"]["max_tokens"] == 7 and data["system"] == "Be brief."
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "40", "--session", str(session))
    try:
        s.child.expect(r"--max-tokens\s+40\s+overrides\s+the\s+session's\s+7")
        s.child.expect_exact(">>>")
        s.child.send("/show\r")
        s.child.expect("max_tokens = 40")
    finally:
        s.close()


def test_trailing_newlines_never_reach_the_model(tiny_gguf: Path, tmp_path: Path) -> None:
    """Item 4: /read, stdin and --multiline sent `msg\\n ASSISTANT:`."""
    doc = tmp_path / "msg.txt"
    doc.write_text("from a file\n\n  \n")
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "2", "--multiline")
    try:
        s.child.expect_exact(">>>")
        s.child.send(f"/read {doc}\r")
        s.child.expect("tok/s")
        s.child.expect_exact(">>>")
        s.child.send("typed\r\r")  # --multiline: Enter adds lines; Alt+Enter sends
        s.child.send("\x1b\r")
        s.child.expect("tok/s")
        s.child.expect_exact(">>>")
        s.child.send("/prompt\r")
        s.child.expect("USER: typed ASSISTANT:")
        s.child.expect_exact(">>>")
        assert "USER: from a file ASSISTANT:" in s.text()
    finally:
        s.close()
    proc = run_cli("ask", str(tiny_gguf), "--print-prompt", "--system", "S.", stdin="piped\n\n")
    assert proc.stdout == "S. USER: piped ASSISTANT: \n"


def test_keys_typed_during_a_reply_stay_off_it_and_wait_unsent(looping_gguf: Path) -> None:
    """Item 5: keys typed while a reply streamed were echoed into it, and their Enter sent
    them as the next message. Now they wait on the next prompt line, unsent."""
    s = Screen(str(looping_gguf), *BASE, "--plain-output", "--max-tokens", "3000")
    try:
        s.child.expect_exact(">>>")
        s.child.send("go\r")
        s.child.expect("line 3 of a reply")
        # We stop reading: the terminal's buffer fills and airochat blocks mid-reply, so these
        # keys certainly arrive while the reply streams.
        s.child.send("typed ahead\r")
        s.child.expect("tok/s", timeout=120)
        s.child.expect_exact(">>>")
        s.child.expect("typed ahead")  # the prompt line, prefilled
        lines = s.lines()
        stats = max(i for i, line in enumerate(lines) if " tokens · " in line)
        assert not any("typed" in line for line in lines[:stats])  # never echoed into it
        assert any(line.startswith(">>> typed ahead") for line in lines[stats:])
        s.child.send("\r")  # now Enter sends it
        s.child.expect("tok/s", timeout=120)
        s.child.expect_exact(">>>")
        s.child.send("/prompt\r")
        s.child.expect("USER: typed ahead ASSISTANT:")
    finally:
        s.close()


def test_edit_with_a_broken_or_cancelling_editor(tiny_gguf: Path, tmp_path: Path) -> None:
    """Item 12: an editor that cannot start ended the REPL with a traceback; one that exits
    non-zero (vim's :cq) resent the message."""
    import os

    cancel = tmp_path / "cancel.sh"
    cancel.write_text('#!/bin/sh\necho EDITED > "$1"\nexit 1\n')
    cancel.chmod(0o755)
    for editor, says in ((str(tmp_path / "no-such-editor"), "cannot start the editor"),
                         (str(cancel), "Unchanged")):  # fmt: skip
        os.environ["EDITOR"] = editor
        try:
            s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "2")
        finally:
            del os.environ["EDITOR"]
        try:
            s.child.expect_exact(">>>")
            turn(s, "hello")
            s.child.send("/edit\r")
            s.child.expect(says)
            s.child.expect_exact(">>>")
            s.child.send("/prompt\r")
            s.child.expect("USER: hello ASSISTANT:")
            s.child.expect_exact(">>>")
            assert "EDITED" not in s.text() and "Traceback" not in s.text()
        finally:
            s.close()


def test_rough_edges_in_the_repl(tiny_gguf: Path, tmp_path: Path) -> None:
    """/system "" clears instead of setting two quote marks; /save into a directory that does
    not exist is refused instead of creating it."""
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "2")
    try:
        s.child.expect_exact(">>>")
        s.child.send('/system ""\r')
        s.child.expect("System prompt cleared")
        s.child.expect_exact(">>>")
        turn(s, "hello")
        s.child.send("/prompt\r")
        s.child.expect("USER: hello ASSISTANT:")
        s.child.expect_exact(">>>")
        assert '"" USER' not in s.text()
        missing = tmp_path / "no" / "such" / "dir" / "chat.json"
        s.child.send(f"/save {missing}\r")
        s.child.expect("no such directory")
        s.child.expect_exact(">>>")
        assert not (tmp_path / "no").exists()
    finally:
        s.close()


def test_single_mode_scene_shows_who_speaks(tiny_gguf: Path, tmp_path: Path) -> None:
    scene = tmp_path / "scene.yaml"
    scene.write_text(
        "user: Jon\nmode: single\ncharacters:\n  - {name: Ayla, description: a trader}\n"
        "  - {name: Bryn, description: a smith}\n"
    )
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "3", "--scene", str(scene), "--ctx", "2048")
    try:
        s.child.expect_exact(">>>")
        s.child.send("/next Bryn\r")
        s.child.expect_exact(">>>")
        turn(s, "Hello there")
        after = s.text().rsplit(">>> Hello there", 1)[1]
        assert after.lstrip().startswith("Bryn:")  # the speaker's name opens the reply
    finally:
        s.close()
