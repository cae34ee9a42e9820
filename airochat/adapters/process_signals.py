"""SIGTERM and SIGHUP (a closed terminal, a `kill`, a service manager) end airochat the way
Ctrl-D does: whatever is running stops, the chat is saved, child processes are stopped, and
the exit status is 128 + the signal."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from airochat.errors import Terminated

ENDING = (signal.SIGTERM, signal.SIGHUP)


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def end_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into a `Terminated` exception: it unwinds through the `finally`
    blocks that save the chat and stop children."""
    previous = {s: signal.signal(s, _raise) for s in ENDING}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
