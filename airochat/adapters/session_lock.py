"""One process per session file: an advisory lock (flock) on `.{name}.lock` beside it, held
for as long as the chat is open, so two processes never write one file in turns and drop each
other's turns. The holder's pid is written in the lock file for the message.

The holder removes the lock file when it lets go (a killed one leaves it: the kernel drops the
flock, and the next holder reuses the file). A waiter that then wins the flock on the removed
file sees that the path no longer names it, and takes the lock again on the new file."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import IO

from airochat.adapters.storage import os_error_reason
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
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 -- held until release
            except OSError:
                return  # a directory we cannot write: saving will say so; nothing to guard
            self._lock(fh, deadline)
            if self._still_there(fh):
                break
            fh.close()  # the holder removed the file we locked: lock the new one
        self._fh = fh
        try:
            # Unbuffered, so a failed write leaves nothing for close() to retry.
            os.ftruncate(fh.fileno(), 0)
            os.pwrite(fh.fileno(), str(os.getpid()).encode(), 0)
        except OSError as exc:  # a full disk: no turn could be saved either, so say it now
            self.release()
            raise SessionLockedError(
                f"cannot open {self.session}: {os_error_reason(exc)} "
                f"(writing {self.path.name}); the session file is left as it was"
            ) from None

    def _lock(self, fh: IO[str], deadline: float) -> None:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder(fh)
                    fh.close()
                    raise SessionLockedError(
                        f"{self.session} is open in another airochat ({holder}); "
                        "close that one first, or use another session file"
                    ) from None
                time.sleep(0.1)

    def _still_there(self, fh: IO[str]) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _holder(fh: IO[str]) -> str:
        fh.seek(0)
        pid = fh.read().strip()
        return f"pid {pid}" if pid.isdigit() else "another process"

    def release(self) -> None:
        if self._fh is not None:
            # Removed while still held, so no one can lock this file after we let go.
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None
