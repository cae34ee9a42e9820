"""The real console script in a tmux pane: a terminal that reflows its lines when resized, as
tmux, VTE, kitty and iTerm2 do (pyte crops them instead). `resize` changes the pane's pty
size, so the program gets SIGWINCH as from a person dragging the window; `text` is the
scrollback and screen with wrapped lines joined; `raw` the bytes the program wrote."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import airochat_exe


class TmuxScreen:
    def __init__(self, args: list[str], tmp: Path, cols: int = 80, rows: int = 24) -> None:
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed")
        self.socket = f"airochat-test-{uuid.uuid4().hex[:8]}"
        self.rows, self.raw_file = rows, tmp / "tmux-raw.bin"
        conf = tmp / "tmux.conf"
        conf.write_text("set -g history-limit 50000\nset -g status off\n")
        command = shlex.join([airochat_exe(), *args])
        self._tmux("-f", str(conf), "new-session", "-d", "-x", str(cols), "-y", str(rows),
                   "-s", "t", f"exec env PROMPT_TOOLKIT_NO_CPR=1 {command}")  # fmt: skip
        self._tmux("pipe-pane", "-o", "-t", "t", f"cat >> {shlex.quote(str(self.raw_file))}")

    def _tmux(self, *args: str) -> str:
        cmd = ["tmux", "-L", self.socket, *args]
        # COLUMNS and LINES (set under pytest) would pin rich's width: a resize goes unseen.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout

    def send(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        self._tmux("send-keys", "-t", "t", "Enter")

    def resize(self, cols: int) -> None:
        self._tmux("resize-window", "-t", "t", "-x", str(cols), "-y", str(self.rows))

    def text(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-", "-E", "-")

    def raw(self) -> str:
        return self.raw_file.read_bytes().decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = 60, start: int = 0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.text()
            if needle in text[start:]:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not on screen:\n{self.text()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
