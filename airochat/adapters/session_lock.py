"""One process per session file: an advisory lock (flock) on `.{name}.lock` beside it, held
for as long as the chat is open, so two processes never write one file in turns and drop each
other's turns. The holder's pid is written in the lock file for the message."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

from airochat.errors import AirochatError


class SessionLockedError(AirochatError):
    pass


class SessionLock:
    def __init__(self, session: Path) -> None:
        self.path = session.with_name(f".{session.name}.lock")
        self.session = session
        self._fh: IO[str] | None = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to `wait_s` for another holder to let go."""
        try:
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 -- held until release
        except OSError:
            return  # a directory we cannot write: saving will say so; nothing to guard
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder(fh)
                    fh.close()
                    raise SessionLockedError(
                        f"{self.session} is open in another airochat ({holder}); "
                        "close that one first, or use another session file"
                    ) from None
                time.sleep(0.1)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    @staticmethod
    def _holder(fh: IO[str]) -> str:
        fh.seek(0)
        pid = fh.read().strip()
        return f"pid {pid}" if pid.isdigit() else "another process"

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None
