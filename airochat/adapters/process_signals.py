"""The process's signals, in one place.

Before a command runs (imports, typer building its commands), Ctrl-C ends quietly with 130
(`quiet_start`). While a command runs (`command_signals`, entered by the CLI edge):

- a reply being generated is stopped by Ctrl-C, SIGTERM or SIGHUP through the chat's
  `CancelToken` (the engine's abort hook ends even a long prompt read; the turn is kept), and an
  ending signal (SIGTERM/SIGHUP) then ends the process once the turn is safe;
- otherwise Ctrl-C raises KeyboardInterrupt and SIGTERM/SIGHUP raise `Terminated`: both unwind
  through the `finally` blocks that save the chat and stop children, and the process ends with
  130 or 128 + the signal, the way Ctrl-D would end it.

Child processes airochat starts (llama-server) leave Ctrl-C to us and die with us
(`child_of_airochat`). No other module installs a handler.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from airochat.domain.cancel import CancelToken
from airochat.errors import Terminated

ENDING = (signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1

# SIGINT's disposition when the process started: a process started with Ctrl-C ignored (a
# background job of a non-interactive shell) keeps ignoring it outside replies.
_at_start: Any = signal.default_int_handler


def _quit(_signum: int, _frame: FrameType | None) -> None:
    os._exit(130)


def quiet_start() -> None:
    """The console script's first call: Ctrl-C before a command runs ends with 130, not with
    a KeyboardInterrupt traceback from the middle of an import."""
    global _at_start
    _at_start = signal.getsignal(signal.SIGINT)
    if _at_start is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _quit)


@contextmanager
def command_signals(cancel: CancelToken) -> Iterator[None]:
    """For the whole of one command: signals stop `cancel`'s reply, or unwind (see above)."""
    ignore_ctrl_c = _at_start is signal.SIG_IGN

    def handle(signum: int, _frame: FrameType | None) -> None:
        if cancel.cancel(ending=None if signum == signal.SIGINT else signum):
            return
        if signum != signal.SIGINT:
            raise Terminated(signum)
        if not ignore_ctrl_c:
            raise KeyboardInterrupt

    caught = (signal.SIGINT, *ENDING)
    previous = {s: signal.signal(s, handle) for s in caught}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def child_of_airochat() -> None:
    """In a child, before exec: Ctrl-C is ours to handle, not the child's, and the kernel
    kills the child when airochat dies (Linux). SIGKILL, not SIGTERM: a child that ignores
    SIGTERM would outlive an airochat killed outright (a graceful end stops it first)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
