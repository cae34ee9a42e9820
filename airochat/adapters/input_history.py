"""The REPL's input history file (Up recalls earlier lines), kept in memory when the file
cannot be read or written -- a read-only or full data directory costs the history, never the
REPL. The problem is said once, between prompts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit.history import FileHistory

from airochat.adapters.storage import os_error_reason, private_file


class InputHistory(FileHistory):
    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path
        self.problem: str | None = None  # set once; from then on the file is left alone
        if path.exists() and not path.is_file():  # a FIFO would block the REPL's start
            self._give_up("not a regular file")
            return
        try:
            private_file(path)
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError | str) -> None:
        why = exc if isinstance(exc, str) else os_error_reason(exc)
        self.problem = (
            f"input history is not kept: cannot write {self.path} ({why}); "
            "this session's lines are kept in memory"
        )

    def load_history_strings(self) -> Iterable[str]:
        if self.problem:
            return []
        try:
            return list(super().load_history_strings())
        except OSError as exc:
            self._give_up(exc)
            return []

    def store_string(self, string: str) -> None:
        if self.problem:
            return
        try:
            super().store_string(string)
        except OSError as exc:
            self._give_up(exc)
