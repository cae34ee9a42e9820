"""The console script's first code. Until a command starts running (imports, typer building
its commands: the first few tenths of a second), Ctrl-C ends quietly with status 130 instead
of a KeyboardInterrupt traceback; each command then takes Ctrl-C over (`command_sigint`)."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

_original: Any = signal.default_int_handler


def _quit(_signum: int, _frame: FrameType | None) -> None:
    os._exit(130)


def command_sigint() -> None:
    """A command is running: Ctrl-C raises KeyboardInterrupt again (or stays ignored)."""
    signal.signal(signal.SIGINT, _original)


def main() -> None:
    global _original
    _original = signal.getsignal(signal.SIGINT)
    if _original is not signal.SIG_IGN:  # a process started with Ctrl-C ignored keeps that
        signal.signal(signal.SIGINT, _quit)
    from airochat.cli import main as cli_main

    cli_main()
