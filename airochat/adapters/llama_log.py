"""llama.cpp's log: hidden unless --verbose, but its last lines kept so that a load failure
can say what llama.cpp said instead of "Failed to load model"."""

from __future__ import annotations

import ctypes
import sys
from collections import deque
from typing import Any

from airochat.domain.visible import visible


class LogTail:
    """Keeps llama.cpp's last log lines so a load failure can say what llama.cpp said."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=40)
        self.echo = False
        self._partial = ""

    def __call__(self, level: int, text: bytes, _user: Any) -> None:
        s = text.decode("utf-8", errors="replace")
        if self.echo:  # --verbose: the log quotes the file's metadata, shown not obeyed
            sys.stderr.write(visible(s) if sys.stderr.isatty() else s)
        self._partial += s
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            if line.strip():
                self.lines.append(line.strip())

    def reason(self) -> str:
        for line in reversed(self.lines):
            low = line.lower()
            if "error" in low or "failed" in low or "invalid" in low:
                return line
        return self.lines[-1] if self.lines else ""


LOG = LogTail()
_log_installed: Any = None


def install() -> None:
    global _log_installed
    if _log_installed is None:
        import llama_cpp

        _log_installed = llama_cpp.llama_log_callback(LOG)
        llama_cpp.llama_log_set(_log_installed, ctypes.c_void_p(0))
