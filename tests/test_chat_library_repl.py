"""The chat library from the REPL in a pseudo-terminal: a chat left with Ctrl-D is kept, found,
resumed with -c reading only the new turn, and held by one REPL at a time; /regen keeps the
earlier reply as an alternative, /alt flips back, /rewind branches, /title names the chat."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pexpect

from tests.conftest import run_cli
from tests.test_chat_library import zebra_gguf  # noqa: F401 -- the fixture
from tests.test_repl import PROMPT, send_message, spawn

ARGS = ("--max-tokens", "8", "--temperature", "0", "--threads", "1", "--system", "S.")
READ = re.compile(r"read (\d+) new prompt tokens")


def leave(child: pexpect.spawn) -> None:
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def chats() -> list[dict[str, object]]:
    return list(json.loads(run_cli("chats", "--json").stdout))


def test_a_chat_left_with_ctrl_d_is_kept_found_and_continued(
    zebra_gguf: Path,  # noqa: F811
) -> None:
    child = spawn(str(zebra_gguf), *ARGS)
    send_message(child, "tell me about okapis")
    send_message(child, "and about ferns")
    leave(child)
    listed = chats()
    assert [(c["title"], c["turns"]) for c in listed] == [("tell me about okapis", 2)]
    found = run_cli("chats", "search", "ferns")
    assert "chat 1 · exchange 2" in found.stdout
    child = spawn("-c", *ARGS)
    assert "resumed 2 exchange(s) from chat 1" in (child.before or "")
    assert "loaded the model's cache" in (child.before or "")
    child.send("what next\r")
    child.expect(READ)
    read = int(child.match.group(1))
    assert read < len(" USER: what next ASSISTANT: ") + 4
    child.expect_exact(PROMPT)
    leave(child)
    assert chats()[0]["turns"] == 3


def test_one_chat_is_held_by_one_repl_two_chats_by_two(zebra_gguf: Path) -> None:  # noqa: F811
    first = spawn(str(zebra_gguf), *ARGS)
    send_message(first, "the first chat")
    second = pexpect.spawn(
        first.args[0].decode(), ["run", "--chat", "1", *ARGS], encoding="utf-8", timeout=60
    )
    second.expect(pexpect.EOF)
    second.close()
    assert second.exitstatus != 0
    assert f"chat 1 is open in another airochat (pid {first.pid})" in (second.before or "")
    other = spawn(str(zebra_gguf), *ARGS)
    send_message(other, "the second chat")
    send_message(first, "more of the first")
    leave(other)
    leave(first)
    assert sorted((c["title"], c["turns"]) for c in chats()) == [
        ("the first chat", 2),
        ("the second chat", 1),
    ]


def test_regen_alt_rewind_and_title(tiny_gguf: Path) -> None:
    """A tiny random model at a high temperature: /regen answers something else."""
    child = spawn(str(tiny_gguf), "--max-tokens", "8", "--temperature", "1.5", "--threads", "1")
    send_message(child, "one")
    send_message(child, "two")
    child.send("/regen\r")
    child.expect(READ)
    child.expect_exact(PROMPT)
    child.send("/alt\r")
    child.expect("alternative 1 of 2")
    child.expect_exact(PROMPT)
    child.send("/rewind 1\r")
    child.expect("back to exchange 1")
    child.expect_exact(PROMPT)
    send_message(child, "three")
    child.send("/title My okapi chat\r")
    child.expect("titled")
    child.expect_exact(PROMPT)
    leave(child)
    listed = chats()
    assert [(c["title"], c["turns"]) for c in listed] == [("My okapi chat", 2)]
    shown = json.loads(run_cli("chats", "show", "1", "--json", "--branches").stdout)
    assert [t["message"] for t in shown["turns"]] == ["one", "three"]
    assert sorted(b["after"] for b in shown["branches"]) == [1, 1]
    text = run_cli("chats", "show", "1", "--branches").stdout
    assert "-- branch 1, after exchange 1 --" in text and "> two" in text
