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


def test_a_long_list_is_many_blocks_and_streams_as_it_renders_whole() -> None:
    """A reply that is one long numbered list (the demo model's habit) must not be one block
    re-rendered whole on every repaint; streamed piece by piece it shows what rendering the
    whole reply at once shows."""
    import io

    from rich.console import Console

    from airochat.adapters.markdown_stream import MarkdownStream, ReplyMarkdown

    items = [
        f"{i}. Item {i} with words that wrap at the edge of a narrow screen" for i in range(1, 40)
    ]
    text = "Here:\n\n" + "\n".join(items) + "\n\nDone.\n- a\n- b\n"
    blocks, _tail = split_blocks(text)
    assert len(blocks) > 30
    streamed, whole = io.StringIO(), io.StringIO()
    view = MarkdownStream(Console(file=streamed, width=60, force_terminal=False))
    for i in range(0, len(text), 7):
        view.update(text[i : i + 7])
    view.close()
    Console(file=whole, width=60, force_terminal=False).print(ReplyMarkdown(text))
    assert streamed.getvalue() == whole.getvalue()
