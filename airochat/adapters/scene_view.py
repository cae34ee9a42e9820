"""Roleplay replies on the terminal: each character's lines in its own colour with the name in
bold, *actions* in italics. Lines are styled once complete; the open line waits for its end."""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text

from airochat.domain.visible import visible

PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
_ACTION = re.compile(r"\*[^*\n]+\*")
_LINE = re.compile(r"^(\*?)([^:*\n]{1,40}):(.*)$")


class SceneView:
    def __init__(self, console: Console, names: list[str], user: str) -> None:
        self.console = console
        self.colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
        self.user = user
        self.buffer = ""

    def style_line(self, line: str) -> Text:
        if self.console.is_terminal:
            line = visible(line)
        m = _LINE.match(line)
        name = m.group(2).strip() if m else None
        colour = self.colours.get(name or "", "white" if name == self.user else "")
        text = Text()
        body = line
        if m and name in (*self.colours, self.user):
            text.append(m.group(1) + m.group(2) + ":", style=f"bold {colour}".strip())
            body = m.group(3)
        pos = 0
        for act in _ACTION.finditer(body):
            text.append(body[pos : act.start()], style=colour)
            text.append(act.group(0), style=f"italic {colour}".strip())
            pos = act.end()
        text.append(body[pos:], style=colour)
        return text

    def update(self, chunk: str) -> None:
        self.buffer += chunk
        *done, self.buffer = self.buffer.split("\n")
        for line in done:
            self.console.print(self.style_line(line))

    def close(self) -> None:
        if self.buffer:
            self.console.print(self.style_line(self.buffer))
        self.buffer = ""
