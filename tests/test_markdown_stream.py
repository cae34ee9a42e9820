"""Streaming markdown: finished blocks are fixed, the open block stays live."""

from __future__ import annotations

import io

from rich.console import Console

from airochat.adapters.markdown_stream import MarkdownStream, split_blocks


def test_blocks_split_at_blank_lines_outside_fences() -> None:
    text = "Para one.\n\n```py\nx = 1\n\ny = 2\n```\n\nPara two still"
    done, tail = split_blocks(text)
    assert done == ["Para one.", "```py\nx = 1\n\ny = 2\n```"]
    assert tail == "Para two still"


def test_open_fence_stays_in_the_tail() -> None:
    done, tail = split_blocks("Intro\n\n```\ncode\n\nmore")
    assert done == ["Intro"] and tail.startswith("```")


def test_stream_renders_everything_once() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=60, color_system=None)
    stream = MarkdownStream(console)
    reply = "# Title\n\nSome **bold** text.\n\n```python\nprint('hi')\n```\n\nThe end."
    for ch in reply:
        stream.update(ch)
    stream.close()
    rendered = out.getvalue()
    for piece in ("Title", "bold", "print('hi')", "The end."):
        assert piece in rendered
    assert "**" not in rendered and "```" not in rendered  # rendered, not raw
