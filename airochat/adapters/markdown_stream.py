"""Stream a reply as rendered markdown without re-rendering the whole reply per token.

A reply is split into blocks at blank lines outside code fences. A finished block can no longer
change: it is rendered once and printed above. Only the open block lives in a rich `Live`
region, repainted a few times a second, so the cost per repaint stays the size of one block
however long the reply grows (the trick aider's mdstream uses, cut at block boundaries).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from markdown_it import MarkdownIt
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import ListItem, Markdown, MarkdownElement
from rich.segment import Segment

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def split_blocks(text: str) -> tuple[list[str], str]:
    """(finished blocks, open tail). A block ends at a blank line outside a code fence; the
    text after the last such line is the open tail."""
    lines = text.split("\n")
    done: list[str] = []
    start = 0
    fence: str | None = None
    for i, line in enumerate(lines[:-1]):  # the last line may still grow
        m = _FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
        elif fence is None and not line.strip() and i > start:
            done.append("\n".join(lines[start:i]))
            start = i + 1
    return done, "\n".join(lines[start:])


class _NumberedItem(ListItem):
    """An ordered list item numbered as the reply numbers it: `1.`, not rich's bare `1`."""

    def render_number(
        self, console: Console, options: ConsoleOptions, number: int, last_number: int
    ) -> RenderResult:
        width = len(str(last_number)) + 3
        lines = console.render_lines(
            self.elements, options.update(width=options.max_width - width), style=self.style
        )
        style = console.get_style("markdown.item.number", default="none")
        numeral = Segment(f"{number}.".rjust(width - 1) + " ", style)
        padding = Segment(" " * width, style)
        for i, line in enumerate(lines):
            yield padding if i else numeral
            yield from line
            yield Segment("\n")


class ReplyMarkdown(Markdown):
    """rich's Markdown, made to lose nothing of a reply: text that looks like HTML is shown as
    typed (rich drops HTML it cannot render), links print their address beside the text, and
    ordered lists keep their numbers as written."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "list_item_open": _NumberedItem,
    }

    def __init__(self, markup: str, code_theme: str = "monokai") -> None:
        super().__init__(markup, code_theme=code_theme, hyperlinks=False)
        parser = MarkdownIt("commonmark", {"html": False})
        self.parsed = parser.enable("strikethrough").enable("table").parse(markup)


class MarkdownStream:
    def __init__(self, console: Console, code_theme: str = "monokai") -> None:
        self.console = console
        self.code_theme = code_theme
        self.text = ""
        self.printed = 0  # finished blocks already printed
        self._live: Live | None = None

    def _md(self, text: str) -> Markdown:
        return ReplyMarkdown(text, code_theme=self.code_theme)

    def update(self, chunk: str) -> None:
        self.text += chunk
        blocks, tail = split_blocks(self.text)
        if len(blocks) > self.printed:
            live = self._ensure_live()
            for block in blocks[self.printed :]:
                live.console.print(self._md(block))  # printed above the live region
            self.printed = len(blocks)
        self._ensure_live().update(self._md(tail))

    def _ensure_live(self) -> Live:
        if self._live is None:
            self._live = Live(
                console=self.console,
                refresh_per_second=8,
                transient=True,  # the tail is printed for good in close()
                vertical_overflow="visible",
            )
            self._live.start()
        return self._live

    def close(self) -> None:
        blocks, tail = split_blocks(self.text + "\n")
        if self._live is not None:
            self._live.stop()
            self._live = None
        rest = [*blocks[self.printed :], tail] if tail.strip() else blocks[self.printed :]
        for block in rest:
            self.console.print(self._md(block))
        self.text, self.printed = "", 0

    def __enter__(self) -> MarkdownStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
