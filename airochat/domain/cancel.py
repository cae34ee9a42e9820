"""Stopping a running reply from outside the code that runs it.

The CLI edge owns the process's signals; the chat owns the engine. A `CancelToken` is what
they share: the chat arms it with the engine's stop for as long as a reply is generated, and
the signal handler cancels it. Nothing here touches `signal`, so a test, a thread or a future
UI can stop a reply the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CancelToken:
    def __init__(self) -> None:
        self._stop: Callable[[], None] | None = None
        # The signal that stopped the reply and must then end the process (SIGTERM,
        # SIGHUP); None for a plain stop (Ctrl-C), which ends only the reply.
        self.ending: int | None = None

    @property
    def armed(self) -> bool:
        return self._stop is not None

    @contextmanager
    def arm(self, stop: Callable[[], None]) -> Iterator[None]:
        """While the block runs, `cancel()` calls `stop` (which must be safe to call from a
        signal handler: set a flag, close a stream)."""
        self._stop, self.ending = stop, None
        try:
            yield
        finally:
            self._stop = None

    def cancel(self, ending: int | None = None) -> bool:
        """Stop what is running; False when nothing is (the caller then acts itself)."""
        stop = self._stop
        if stop is None:
            return False
        if ending is not None:
            self.ending = ending
        stop()
        return True
