"""What is on screen is what the model wrote (issue 21, part B): the real console script in a
pseudo-terminal at 80 columns, its raw bytes and the screen pyte shows."""

from __future__ import annotations

from pathlib import Path

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
