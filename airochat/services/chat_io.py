"""What the REPL needs of a terminal: read a message, stream a reply, say things. The terminal
adapter implements it with prompt_toolkit and rich; tests can implement it with lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ChatIO(Protocol):
    def read_message(self, default: str = "") -> str | None:
        """The next message or command; None when the user leaves (Ctrl-D)."""
        ...

    def edit_text(self, text: str) -> str | None:
        """`text` edited by the user; None when the edit was cancelled."""
        ...

    def stream(self, text: str) -> None: ...

    def end_reply(self, summary: str, cut: bool = False) -> None: ...

    def show(self, text: str) -> None: ...

    def show_terms(self, rows: list[tuple[str, str]]) -> None:
        """Terms and what they mean (/help): a description wraps under itself."""
        ...

    def notice(self, text: str) -> None: ...

    def error(self, text: str) -> None: ...

    def attach(self, status: Callable[[], str], commands: Callable[[], list[str]]) -> None:
        """What the toolbar shows and which commands Tab completes, from the chat in force."""
        ...

    def close(self) -> None:
        """The REPL is over: give the terminal back as it was."""
        ...
