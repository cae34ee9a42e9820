"""The real REPL in a pseudo-terminal, with what a person would see: every byte the program
writes is fed to a terminal emulator (pyte) of the same size, so a test reads the screen
(wrapped, cropped or overdrawn as a terminal would show it). `raw` keeps the byte stream
itself (decoded), for what a terminal would obey rather than show."""

from __future__ import annotations

import os

import pexpect
import pyte

from tests.conftest import airochat_exe


class Screen:
    def __init__(self, *args: str, cols: int = 80, rows: int = 200, command: str = "run") -> None:
        self.raw = ""
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        env = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.child = pexpect.spawn(
            airochat_exe(),
            [command, *args],
            env=env,
            encoding="utf-8",
            timeout=60,
            dimensions=(rows, cols),
        )
        self.child.logfile_read = self  # every byte read goes to the emulator too

    def write(self, data: str) -> None:
        self.raw += data
        self.stream.feed(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        """The screen as text; a line that fills the width continues on the next (the
        terminal wrapped it), so it is joined to it as the program wrote it."""
        out = ""
        for raw in self.screen.display:
            line = raw.rstrip()
            out += (
                line
                if len(raw.rstrip("\n")) == self.screen.columns and raw[-1] != " "
                else (line + "\n")
            )
        return out.strip("\n")

    def close(self) -> None:
        self.child.close(force=True)
