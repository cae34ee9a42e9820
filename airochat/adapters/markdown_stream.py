"""Stream a reply as rendered markdown without re-rendering the whole reply per token.

A reply is split into blocks at blank lines outside code fences. A finished block can no longer
change: it is rendered once and printed above. Only the open block's last lines live in a
window repainted a few times a second (live_window.py), so the cost per repaint stays the
size of one block however long the reply grows (aider's mdstream trick, cut at blocks).
"""

from __future__ import annotations

import html
import re
import time
from collections import Counter
from typing import Any, ClassVar

from markdown_it import MarkdownIt
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import ImageItem, ListItem, Markdown, MarkdownElement, TableElement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from airochat.adapters.live_window import Lines, LiveWindow, rows
from airochat.domain.visible import visible

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_ITEM = re.compile(r"^(?:\d{1,9}[.)]|[-*+])[ \t]")  # a top-level list item begins


def split_blocks(text: str) -> tuple[list[str], str]:
    """(finished blocks, open tail). A block ends at a blank line outside a code fence, and
    a list item ends where the next top-level item of its list begins (a long list is many
    blocks, not one that is re-rendered whole on every repaint). The text after the last
    boundary is the open tail."""
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
        elif fence is None and i > start and _ITEM.match(line) and _ITEM.match(lines[start]):
            done.append("\n".join(lines[start:i]))
            start = i
    return done, "\n".join(lines[start:])


class _Continued:
    """A block that goes on a list printed just above it: rendered without the blank line
    rich puts before a list, so the items read as one list."""

    def __init__(self, renderable: Markdown) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        while lines and not "".join(seg.text for seg in lines[0]).strip():
            lines.pop(0)
        for line in lines:
            yield from line
            yield Segment.line()


class _NumberedItem(ListItem):
    """An ordered list item numbered as the reply numbers it: `1.`, not rich's bare `1`."""

    def render_number(
        self, console: Console, options: ConsoleOptions, number: int, last_number: int
    ) -> RenderResult:
        # At least two digits: a streamed list is printed item by item, before its last
        # number is known, and should line up as the whole reply would (up to 99 items).
        width = max(len(str(last_number)), 2) + 3
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


class _FoldingTable(TableElement):
    """A table whose cells fold a word too long for its column instead of cutting it to
    `Colum…`: ten columns at 80 wide lost every header."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for table in super().__rich_console__(console, options):
            if isinstance(table, Table):
                for column in table.columns:
                    column.overflow = "fold"
            yield table


class _ImageWithAddress(ImageItem):
    """An image as its alt text and its address, as links are shown (rich shows the alt text
    alone when it does not make terminal hyperlinks)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.text and self.destination:
            yield Text.assemble("🌆 ", self.text, f" ({self.destination}) ", end="")
        else:
            yield Text.assemble("🌆 ", self.text or self.destination, " ", end="")


class ReplyMarkdown(Markdown):
    """rich's Markdown, made to lose nothing of a reply: text that looks like HTML is shown as
    typed (rich drops HTML it cannot render), links and images print their address beside the
    text, ordered lists keep their numbers as written, and table cells fold long words.

    A block is shown as typed where markdown would lose text: lists and quotes nested deeper
    than the width allows (each level indents, rich crops what has no room left, markdown-it
    stops parsing past its nesting limit: the demo model's "1. 2. 3. ..." is a list nested
    hundreds deep, and vanished whole), and tables with more columns than the width holds.
    """

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "list_item_open": _NumberedItem,
        "table_open": _FoldingTable,
        "image": _ImageWithAddress,
    }

    MAX_DEPTH = 6  # well below markdown-it's nesting limit (20 levels; a list takes two)
    COLUMNS_PER_LEVEL = 6  # what a nested list or quote takes at most (`100. `)
    MIN_TEXT_COLUMNS = 20  # what the deepest text keeps

    MIN_CELL_COLUMNS = 6  # a table column narrower than this (padding included) is unreadable

    def __init__(self, markup: str, code_theme: str = "monokai") -> None:
        super().__init__(markup, code_theme=code_theme, hyperlinks=False)
        parser = MarkdownIt("commonmark", {"html": False})
        self.parsed = parser.enable("strikethrough").enable("table").parse(_literal(markup))
        _hard_breaks(self.parsed)
        self.depth = _nesting(self.parsed)
        self.table_columns = _widest_table(self.parsed)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._fits(options.max_width):
            lines = console.render_lines(_Rendered(self), options, pad=False)
            if _keeps(self.markup, lines):
                yield Lines(lines)
                return
        yield Text(self.markup)

    def _fits(self, width: int) -> bool:
        levels = (width - self.MIN_TEXT_COLUMNS) // self.COLUMNS_PER_LEVEL
        deep = self.depth > min(levels, self.MAX_DEPTH - 1)
        return not deep and self.table_columns * self.MIN_CELL_COLUMNS <= width


class _Rendered:
    """rich's own rendering of a ReplyMarkdown, to be checked before it is shown."""

    def __init__(self, markdown: ReplyMarkdown) -> None:
        self.markdown = markdown

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from Markdown.__rich_console__(self.markdown, console, options)


# A line markdown reads as an empty list item, heading or quote (`1000.`, `-`, `#`, `>`), or as
# a link reference definition (`[x]: y`): all of them vanish from the rendering.
_SWALLOWED = re.compile(r"^( {0,3})((?:\d{1,9}[.)]|[-*+]|#{1,6}|>)[ \t]*$|\[[^\]]*\]:)")


def _literal(markup: str) -> str:
    """The markup with each line that markdown would swallow escaped, so it shows as typed
    (`1000.`, a base model's favourite reply, was an empty line). Code fences are left alone."""
    lines = markup.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1) == fence else fence)
        elif fence is None and _SWALLOWED.match(line):
            # The backslash goes before the punctuation that makes the construct: `1000\.`
            at = re.search(r"[^\d ]", line)
            at_i = at.start() if at else 0
            lines[i] = line[:at_i] + "\\" + line[at_i:]
    return "\n".join(lines)


def _hard_breaks(tokens: list[Any]) -> None:
    """Each line break the model wrote is kept (as chat interfaces do): a poem, an address or
    dialogue one per line must not run together into one paragraph (markdown's soft breaks)."""
    for token in tokens:
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"


_WORD_CHARS = re.compile(r"[^\W_]+")


def _keeps(source: str, lines: list[list[Segment]]) -> bool:
    """Whether the rendering shows every letter and digit of the source (markdown may add
    bullets, numbers and addresses, fold words and reorder a folded table's pieces, and hide a
    fence's language; it must never drop text). A construct not foreseen here that swallows
    text is then shown as typed."""
    shown = Counter(_letters("".join(seg.text for line in lines for seg in line)))
    text = "\n".join(line for line in source.split("\n") if not _FENCE.match(line))
    return not Counter(_letters(html.unescape(text))) - shown


def _letters(text: str) -> str:
    return "".join(_WORD_CHARS.findall(text))


_OPENS = {"bullet_list_open", "ordered_list_open", "blockquote_open"}
_CLOSES = {"bullet_list_close", "ordered_list_close", "blockquote_close"}


def _widest_table(tokens: list[Any]) -> int:
    """The most columns a table here has (its header cells)."""
    widest = count = 0
    for token in tokens:
        if token.type == "thead_open":
            count = 0
        elif token.type == "th_open":
            count += 1
            widest = max(widest, count)
    return widest


def _nesting(tokens: list[Any]) -> int:
    """How deep lists and quotes nest."""
    depth = deepest = 0
    for token in tokens:
        if token.type in _OPENS:
            depth += 1
            deepest = max(deepest, depth)
        elif token.type in _CLOSES:
            depth -= 1
    return deepest


def _visible_lines(lines: list[list[Segment]]) -> list[list[Segment]]:
    """Rendered lines with nothing in them a terminal obeys: markdown turns character
    references (`&#x202E;`, `&#13;`) into the characters themselves."""
    return [
        [seg if seg.control else Segment(visible(seg.text), seg.style) for seg in line]
        for line in lines
    ]


def _blank(lines: list[list[Segment]]) -> bool:
    """Whether these lines are a margin (a code block's padding is not)."""
    return not lines or not "".join(seg.text for line in lines for seg in line)


class MarkdownStream:
    """Finished blocks are printed once; of the open block, the lines that can no longer
    change are printed too, and only its last few lines live in the repainted window. A
    window taller than the terminal cannot be redrawn (the cursor cannot go above the top),
    and a long paragraph would otherwise leave a copy of itself in the scrollback at every
    repaint.

    The open block is rendered at the width it began at until it ends, even when the terminal
    is resized meanwhile: its lines printed so far were cut at that width, and counting them
    again at another would repeat or skip text (a terminal that reflows wraps the wider lines
    while narrow and joins them again when widened). The next block takes the new width."""

    LIVE_LINES = 6  # the open block's last lines that may still change (wrapping, a heading)
    REPAINT_S = 0.1  # the open block is re-rendered at most this often

    def __init__(self, console: Console, code_theme: str = "monokai") -> None:
        self.console = console
        self.code_theme = code_theme
        self.text = ""
        self.printed = 0  # finished blocks already printed
        self.tail_printed = 0  # lines of the open block already printed above the window
        self._window: LiveWindow | None = None
        self._in_list = False  # the last block printed was a list item
        self._shown = False  # a block is on screen, not ending in a margin: the next needs one
        self._rendered_at = 0.0
        self.width: int | None = None  # what the open block is rendered at, once shown

    def _md(self, text: str) -> Markdown | _Continued:
        markdown = ReplyMarkdown(text, code_theme=self.code_theme)
        return _Continued(markdown) if self._continues_list(text) else markdown

    def _continues_list(self, block: str) -> bool:
        return self._in_list and bool(_ITEM.match(block))

    def _lines(self, block: str) -> list[list[Segment]]:
        options = self.console.options.update_width(self.width or self.console.width)
        lines = _visible_lines(self.console.render_lines(self._md(block), options, pad=False))
        if self._shown and not _blank(lines[:1]) and not self._continues_list(block):
            lines = [[], *lines]  # the blank line between blocks, as when the reply renders whole
        return lines

    def _finished(self, block: str) -> list[list[Segment]]:
        """A block that can no longer change: the lines of it not printed yet."""
        whole = self._lines(block)
        lines = whole[self.tail_printed :]
        self._in_list = bool(_ITEM.match(block))
        self._shown = not _blank(whole[-1:])  # a rule ends in its own margin
        self.tail_printed = 0
        self.width = None  # the next block begins at the terminal's width
        return lines

    def update(self, chunk: str) -> None:
        if self._window is None:
            self._window = LiveWindow(self.console)
        self.text += visible(chunk)  # a reply never controls the terminal
        blocks, tail = split_blocks(self.text)
        fresh = len(blocks) > self.printed
        now = time.monotonic()
        if not fresh and now - self._rendered_at < self.REPAINT_S:
            return
        self._rendered_at = now
        above: list[list[Segment]] = []
        for block in blocks[self.printed :]:
            above += self._finished(block)
        self.printed = len(blocks)
        # One write: the window is repainted without the lines that leave it before they
        # are printed above it, so no line is ever on the screen twice.
        self._window.paint(above, self._open_lines(tail, above))

    def _open_lines(self, tail: str, above: list[list[Segment]]) -> list[list[Segment]]:
        """The open block's last lines, for the live window; the lines before them can no
        longer change and are added to `above`. The window stays lower than the terminal."""
        if not tail:
            return []
        self.width = self.width or self.console.width
        lines = self._lines(tail)
        stable = len(lines) - self.LIVE_LINES
        while stable < len(lines) - 1 and (
            rows(lines[max(stable, 0) :], self.console.width) >= self.console.height - 1
        ):
            stable = max(stable, 0) + 1
        if stable > self.tail_printed:
            above += lines[self.tail_printed : stable]
            self.tail_printed = stable
        return lines[self.tail_printed :]

    def close(self) -> None:
        blocks, tail = split_blocks(self.text + "\n")
        rest = [*blocks[self.printed :], tail] if tail.strip() else blocks[self.printed :]
        lines = [line for block in rest for line in self._finished(block)]
        if self._window is not None:
            self._window.close(lines)
            self._window = None
        elif lines:
            self.console.print(Lines(lines), crop=False)
        self.text, self.printed, self._in_list, self.tail_printed = "", 0, False, 0
        self._shown, self.width = False, None

    def __enter__(self) -> MarkdownStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
