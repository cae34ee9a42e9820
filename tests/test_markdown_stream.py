"""Streaming markdown: finished blocks are fixed, the open block stays live."""

from __future__ import annotations

import io
from collections.abc import Callable

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


def test_a_reply_taller_than_the_terminal_streams_without_copies() -> None:
    """A paragraph that grows past the terminal's height while the live window repaints:
    rich cannot move the cursor above the top of the screen to redraw it, so the window must
    stay small -- else every repaint leaves a copy of the reply in the scrollback (seen with
    the demo model's one-line numbered lists). Read through a terminal emulator."""
    import time

    console, shown = _terminal()
    words = [f"w{i}" for i in range(600)]
    view = MarkdownStream(console)
    view.update("1. ")
    for i in range(0, len(words), 6):
        view.update(" ".join(words[i : i + 6]) + " ")
        time.sleep(0.01)  # the window repaints between chunks (REPAINT_S)
    view.close()
    assert shown() == words  # every word once, in order


def test_no_line_is_ever_shown_twice_while_streaming() -> None:
    """The lines that leave the live window are printed above it in the same write that
    repaints the window without them: between two repaints the screen must not show a line
    both printed and still in the window (seen as a doubled line in tmux while the demo
    model streamed). Every write is read through a terminal emulator."""
    import time

    doubled: list[list[str]] = []  # what the screen showed when a word stood there twice

    def check(words: list[str]) -> None:
        if len(words) != len(set(words)):
            doubled.append(words[-30:])

    console, shown = _terminal(check)
    words = [f"w{i}" for i in range(400)]
    view = MarkdownStream(console)
    view.update("Intro paragraph.\n\n")
    for i in range(0, len(words), 5):
        view.update(" ".join(words[i : i + 5]) + (" " if i % 100 else "\n\n"))
        time.sleep(0.01)  # slow enough for the window to repaint between chunks
    view.close()
    assert not doubled, doubled[0]
    assert shown() == words


def _terminal(
    after_write: Callable[[list[str]], object] = lambda words: None,
) -> tuple[Console, Callable[[], list[str]]]:
    """A console writing into a terminal emulator at 80x24 with scrollback, and a function
    that reads the words `w<N>` shown (scrollback and screen); `after_write` sees them after
    every write."""
    import pyte

    screen = pyte.HistoryScreen(80, 24, history=5000)
    stream = pyte.Stream(screen)

    def shown() -> list[str]:
        rows = ["".join(c.data for c in row.values()) for row in screen.history.top]
        return [w for w in " ".join([*rows, *screen.display]).split() if w.startswith("w")]

    class Terminal(io.StringIO):
        def write(self, data: str) -> int:
            stream.feed(data.replace("\n", "\r\n"))
            after_write(shown())
            return len(data)

        def isatty(self) -> bool:
            return True

    return Console(file=Terminal(), width=80, height=24, force_terminal=True), shown


def test_lists_and_quotes_nested_past_the_width_are_shown_as_typed() -> None:
    """The demo model's "1. 2. 3. ..." is an ordered list nested once per number: each level
    indented, rich cropped the text to nothing and markdown-it stopped parsing past its nesting
    limit -- a 2048-token reply showed as a blank screen. Too deep for the width, a block is
    shown as typed; shallow nesting still renders as lists."""
    from airochat.adapters.markdown_stream import ReplyMarkdown

    numbers = " ".join(f"{i}." for i in range(1, 300))
    quotes = "> " * 60 + "the end of a deep quote"
    bullets = "- " * 60 + "the end of deep bullets"
    for text in (numbers, quotes, bullets, f"Intro.\n\n{numbers}\n\nOutro."):
        for width in (80, 40):
            whole, streamed = io.StringIO(), io.StringIO()
            Console(file=whole, width=width).print(ReplyMarkdown(text))
            view = MarkdownStream(Console(file=streamed, width=width))
            for i in range(0, len(text), 5):
                view.update(text[i : i + 5])
            view.close()
            for out in (whole.getvalue(), streamed.getvalue()):
                assert out.split() == text.split(), (width, text[:20])
    nested = io.StringIO()
    Console(file=nested, width=80).print(ReplyMarkdown("1. one\n   - two\n     - three"))
    assert "• two" in nested.getvalue()  # two levels: a list as before


def test_wide_tables_and_images_lose_nothing() -> None:
    """A table of ten columns at 80 wide showed `Colum…` for every header; thirty columns
    dropped whole columns. Cells now fold, and a table wider than the screen holds is shown as
    typed. An image shows its address, as a link does."""
    from airochat.adapters.markdown_stream import ReplyMarkdown

    def table(n: int) -> str:
        head = "|" + "|".join(f"Column{i}" for i in range(n)) + "|"
        rule = "|" + "|".join("---" for _ in range(n)) + "|"
        return "\n".join([head, rule, "|" + "|".join(f"value_{i}_xyz" for i in range(n)) + "|"])

    def shown(text: str) -> str:
        out = io.StringIO()
        Console(file=out, width=80).print(ReplyMarkdown(text))
        return out.getvalue()

    ten = shown(table(10))
    assert "…" not in ten and "─" in ten  # still a table
    words = ten.split()  # each header folds to "Column" over its number
    assert words[:20] == ["Column"] * 10 + [str(i) for i in range(10)]
    thirty = "".join(shown(table(30)).split("\n"))
    assert all(f"|value_{i}_xyz|" in thirty for i in range(30))
    assert "(https://example.org/cat.png)" in shown("![a cat](https://example.org/cat.png)")


def test_blocks_keep_the_blank_line_between_them_as_the_whole_reply_does() -> None:
    """Streamed block by block, two paragraphs ran together with no blank line between them
    (each block was rendered alone): the model's paragraphs read as one."""
    from airochat.adapters.markdown_stream import ReplyMarkdown

    texts = [
        "a\n\nb\n\n- x\n- y\n\nc",
        "Intro\n\n```py\nx=1\n```\n\nend",
        "# T\n\npara one\nline two\n\n1. a\n2. b\n\n> q\n\nz",
        "p\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nq",
        "---\n\nx\n\n---\n\n- a\n\n---",
    ]
    for text in texts:
        whole, streamed = io.StringIO(), io.StringIO()
        Console(file=whole, width=40).print(ReplyMarkdown(text))
        view = MarkdownStream(Console(file=streamed, width=40))
        for i in range(0, len(text), 3):
            view.update(text[i : i + 3])
        view.close()
        assert [line.rstrip() for line in streamed.getvalue().split("\n")] == [
            line.rstrip() for line in whole.getvalue().split("\n")
        ], text
