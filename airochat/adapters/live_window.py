"""The last lines of a streamed reply, repainted in place at the bottom of the output.

rich's `Live` erases its region by moving up one row per line it printed. A terminal resized
narrower rewraps (reflows) those lines into more rows -- tmux, VTE, kitty, iTerm2 and Windows
Terminal all do -- so `Live` erased too few and the rest stayed on screen as a copy (items
11-14 twice after 80 -> 60 columns). This window counts its rows at the terminal's width at
the moment it erases them. (A terminal that does not reflow, xterm, crops lines instead; there
a repaint just after narrowing may erase a few rows above the window.)
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.control import Control
from rich.segment import ControlType, Segment


class Lines:
    """Rendered lines as a renderable, each ended by a line break."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


def rows(lines: list[list[Segment]], width: int) -> int:
    """How many terminal rows the lines take at `width` (a longer line wraps)."""
    width = max(width, 1)
    return sum(max(1, -(-Segment.get_line_length(line) // width)) for line in lines)


class LiveWindow:
    """Lines printed for good, with a window of lines below them that the next paint
    replaces. The cursor rests at the start of the row under the window."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lines: list[list[Segment]] = []
        self._painting = False

    def paint(self, above: list[list[Segment]], window: list[list[Segment]]) -> None:
        """One write: the old window erased, `above` printed for good, the new window."""
        if not self.console.is_terminal or self.console.is_dumb_terminal:
            self.console.print(Lines(above), crop=False)  # a file keeps what is final only
            return
        with self.console:  # buffered: the terminal never shows a line both above and below
            if not self._painting:
                self.console.show_cursor(False)
                self._painting = True
            self.console.control(self._erase())
            self.console.print(Lines([*above, *window]), crop=False)
        self.lines = window

    def close(self, rest: list[list[Segment]]) -> None:
        """The window erased and `rest` printed for good; the cursor shown again."""
        self.paint(rest, [])
        if self._painting:
            self.console.show_cursor(True)
            self._painting = False

    def _erase(self) -> Control:
        up = rows(self.lines, self.console.width) if self.lines else 0
        return Control(
            ControlType.CARRIAGE_RETURN,
            (ControlType.ERASE_IN_LINE, 2),
            *(((ControlType.CURSOR_UP, 1), (ControlType.ERASE_IN_LINE, 2)) * up),
        )
