"""Keys typed while airochat is busy (a reply streaming, a long prompt being read).

A terminal in its normal mode echoes them into the reply and turns Enter into a newline, and
the next prompt then reads them as if sent. Between prompts we switch echo and line editing
off (keeping Ctrl-C as a signal), and hand what was typed to the next prompt as its starting
text: nothing typed is lost, nothing is sent without an Enter at the prompt.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
from typing import Any

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[O\[]?.|[\x00-\x08\x0b-\x1f\x7f]")


class TypeAhead:
    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else -1
        self.fd = fd
        self._saved: list[Any] | None = None

    def hold(self) -> None:
        """From now until `release()`, keys are neither echoed nor line-edited."""
        if self.fd < 0 or self._saved is not None:
            return
        import termios

        try:
            self._saved = termios.tcgetattr(self.fd)
            quiet = termios.tcgetattr(self.fd)
            quiet[3] &= ~(termios.ECHO | termios.ICANON)  # lflag; ISIG stays: Ctrl-C works
            termios.tcsetattr(self.fd, termios.TCSANOW, quiet)
        except termios.error:
            self._saved = None

    def release(self) -> str:
        """Restore the terminal; return the text typed meanwhile (escape sequences dropped,
        Enter kept as a line break that is not a send)."""
        if self._saved is None:
            return ""
        import termios

        typed = self._pending()
        with contextlib.suppress(termios.error):
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
        self._saved = None
        text = _ESCAPES.sub("", typed.replace("\r\n", "\n").replace("\r", "\n"))
        return text.strip("\n")

    def _pending(self) -> str:
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="replace")
