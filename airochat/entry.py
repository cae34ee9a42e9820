"""The console script's first code. Ctrl-C while Python imports the CLI (the first tenth of a
second) ends quietly with status 130 instead of a KeyboardInterrupt traceback."""

from __future__ import annotations

import os
import signal
from types import FrameType


def _quit(_signum: int, _frame: FrameType | None) -> None:
    os._exit(130)


def main() -> None:
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # a process started with Ctrl-C ignored keeps that
        signal.signal(signal.SIGINT, _quit)
    from airochat.cli import main as cli_main

    signal.signal(signal.SIGINT, previous)
    cli_main()
