"""What is on screen is what the model wrote (issue 21, part B): the real console script in a
pseudo-terminal at 80 columns, its raw bytes and the screen pyte shows."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pexpect
import pytest

from tests.screen import Screen
from tests.script_model import write_script_model

BASE = ("--temperature", "0", "--system", "S.", "--threads", "1", "--no-input-history")

# Lines markdown would swallow (empty list items, a lone heading mark or quote, a link
# reference definition), a poem one line per line, and what must still render as markdown.
SWALLOWED = ["1000.", "-", "*", "#", ">", "2)", "[note]: https://example.org/n", "<!-- aside -->"]
POEM = ["roses are red", "violets are blue", "sugar is sweet", "and so are you"]
REPLY = [
    *(f"{line}\n\n" for line in SWALLOWED),
    *(f"{line}\n" for line in POEM),
    "\n- first point\n- second point\n\n",
    "```\ncode line one\ncode line two\n```\n\n",
    "| name | size |\n|---|---|\n| tiny | 12 |\n",
]


@pytest.fixture(scope="module")
def swallow_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_script_model(tmp_path_factory.mktemp("swallow") / "swallow.gguf", REPLY)


def _reply_lines(s: Screen, after: str) -> list[str]:
    shown = s.text().rsplit(after, 1)[1].split(" tokens · ")[0]
    return [line.strip() for line in shown.split("\n")]


def test_markdown_never_drops_what_the_model_wrote(swallow_gguf: Path) -> None:
    """`1000.` (an empty ordered-list item to markdown) showed as an empty line, and so did
    `-`, `#`, `>` and a link reference definition; the poem ran together into one line.
    Each is now on screen as written, in the reply and after /regen; lists, code blocks and
    tables still render."""
    s = Screen(str(swallow_gguf), *BASE)
    try:
        s.child.expect_exact(">>>")
        for send, after in (("hi", ">>> hi"), ("/regen", ">>> /regen")):
            s.child.send(send + "\r")
            s.child.expect("tok/s")
            s.child.expect_exact(">>>")
            lines = _reply_lines(s, after)
            for line in [*SWALLOWED, *POEM]:
                assert line in lines, (line, lines)
            assert lines.index("1000.") < lines.index(POEM[0]) < lines.index(POEM[3])
            assert "• first point" in lines and "• second point" in lines  # still a list
            assert "code line one" in lines and "```" not in lines  # still a code block
            assert any("─" in line for line in lines) and "|---|---|" not in lines  # a table
        assert "1000." in s.raw and "\x1b[2J" not in s.raw
    finally:
        s.close()


ITEMS = [f"{n}. Item {n} of the list has words enough to be a line that wraps at sixty" for n in range(1, 36)]  # fmt: skip
SENTENCES = [f"Sentence {k} of the paragraph goes on a while." for k in range(1, 41)]
# Resized at these points: mid-item (narrower, wider, twice) and mid-paragraph.
RESIZES = [  # (the stream is held after this, seen on screen before it, new width)
    ("8. Item 8 of the", "7. Item 7 ", 60),
    ("15. Item 15 of", "14. Item 14 ", 80),
    ("22. Item 22 of", "21. Item 21 ", 60),
    ("29. Item 29 of", "28. Item 28 ", 80),
    ("Sentence 10 of", "Sentence 9 ", 60),
    ("Sentence 25 of", "Sentence 24 ", 80),
]


def _pieces(text: str) -> list[str]:
    """The reply as a model streams it: a word (and the space before it) at a time."""
    return re.findall(r"\s*\S+|\s+$", text)


def test_resizing_during_a_reply_never_repeats_or_splits_text(tmp_path: Path) -> None:
    """Items 11-14 were printed twice after 80 -> 60 columns, a number was split across lines
    and blank lines appeared inside a sentence after 80 -> 60 -> 80: the live window was
    erased by rows counted at the old width (the terminal had reflowed it into more), and the
    reply was restarted mid-sentence at the new width. Here tmux, a terminal that reflows,
    is resized at six points of a streamed list and paragraph; the scrollback must hold each
    word once, in order, each item starting its own line, the paragraph without a gap."""
    from tests.lying_openai import LyingOpenAI
    from tests.tmux_screen import TmuxScreen

    text = (
        "Here is the list:\n\n" + "\n".join(ITEMS) + "\n\n" + " ".join(SENTENCES) + "\n\nThe end."
    )
    pieces = _pieces(text)
    holds = {_index(pieces, marker): threading.Event() for marker, _, _ in RESIZES}
    server = LyingOpenAI(pieces, [40] * len(pieces), n_ctx=4096, holds=holds, delay_s=0.01)
    server.start()
    args = ["run", "--server", server.url, "--server-kind", "openai", *BASE, "--max-tokens", "3000"]
    s = TmuxScreen(args, tmp_path)
    try:
        s.wait_for(">>>")
        s.send("go")
        for (_, near, cols), event in zip(RESIZES, holds.values(), strict=True):
            s.wait_for(near)  # the stream is at the hold
            time.sleep(0.3)  # its last pieces are painted
            s.resize(cols)
            time.sleep(0.3)  # SIGWINCH is in; the next piece is drawn at the new width
            event.set()
        shown = s.wait_for(" tokens · ").split(">>> go", 1)[1].split(" tokens · ")[0]
        shown = shown.rsplit("\n", 1)[0]  # up to the stats line
    finally:
        s.close()
        server.stop()
    assert shown.split() == text.split(), shown
    lines = shown.split("\n")
    for n in range(1, 36):
        assert sum(bool(re.match(rf"\s*{n}\. Item {n} of", line)) for line in lines) == 1, n
    paragraph = [i for i, line in enumerate(lines) if "Sentence" in line or "paragraph" in line]
    assert all(lines[i].strip() for i in range(paragraph[0], paragraph[-1] + 1)), shown
    assert "\x1b[2J" not in s.raw() and "\x1b[3J" not in s.raw()


def _index(pieces: list[str], marker: str) -> int:
    """The piece that ends `marker` in the reply (the stream is held before the next one)."""
    text = ""
    for i, piece in enumerate(pieces):
        text += piece
        if text.endswith(marker):
            return i + 1
    raise ValueError(marker)


@pytest.mark.parametrize("cols", [80, 60])
def test_banner_and_help_wrap_between_their_parts(tiny_gguf: Path, cols: int) -> None:
    """The banner wrapped by words with a dangling `·`; /help descriptions wrapped back to
    column 0 at 60 columns. The banner now breaks between its parts, a description under
    itself."""
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "2", cols=cols)
    try:
        s.child.expect_exact(">>>")
        s.child.send("/help\r")
        s.child.expect("Ctrl-D leaves")
        s.child.expect_exact(">>>")
        lines = s.lines()
        top = lines[: next(i for i, line in enumerate(lines) if line.startswith(">>>"))]
        assert any("template" in line for line in top) and any("memory" in line for line in top)
        for line in top:
            assert not line.strip().startswith("·") and not line.strip().endswith("·"), top
        start = next(i for i, line in enumerate(lines) if line.startswith(">>> /help"))
        end = next(i for i, line in enumerate(lines) if line.startswith("Enter sends"))
        help_lines = lines[start + 1 : end]
        assert all(line.startswith(("/", "          ")) for line in help_lines), help_lines
        assert all(len(line) <= cols for line in lines)
        if cols == 60:  # some description is longer than the width: it wrapped under itself
            assert any(line.startswith("          ") for line in help_lines), help_lines
    finally:
        s.close()


def test_a_resumed_chat_shows_its_last_exchanges(tmp_path: Path) -> None:
    """`resumed 2 exchange(s)` showed none of them. The last two are shown, dimmed, under it,
    with control characters made visible, for --session and for -c (the chat library)."""
    gguf = write_script_model(tmp_path / "paris.gguf", ["The capital", " is Paris", " \x1b[2J."])
    session = tmp_path / "s.json"
    for resume in (("--session", str(session)), ("-c",)):
        s = Screen(str(gguf), *BASE, *resume)
        try:
            s.child.expect_exact(">>>")
            for word in ("first question", "second question", "third question"):
                s.child.send(word + "\r")
                s.child.expect("tok/s")
                s.child.expect_exact(">>>")
            s.child.sendcontrol("d")
            s.child.expect(pexpect.EOF)
        finally:
            s.close()
        s = Screen(str(gguf), *BASE, *resume)
        try:
            s.child.expect_exact(">>>")
            lines = s.lines()
            said = next(i for i, line in enumerate(lines) if "resumed 3 exchange(s)" in line)
            first = lines.index("> second question")
            banner = next(i for i, line in enumerate(lines) if "/help for commands" in line)
            assert said < first < banner, lines  # under the line that says it resumed
            shown = lines[first : first + 4]
            assert shown[2] == "> third question", lines
            assert shown[1] == shown[3] == "The capital is Paris \\x1b[2J.", lines
            assert "\x1b[2m> second question" in s.raw  # dimmed
            assert "\x1b[2J" not in s.raw and "first question" not in "\n".join(lines)
        finally:
            s.close()
