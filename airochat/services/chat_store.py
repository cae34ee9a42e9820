"""Where a chat is kept between processes: the protocol. The session file (`--session FILE`,
services/session_file.py) is one place; a chat library (every chat kept as it happens) is
another. `KeptChat` (services/kept_chat.py) decides when to load and save; a store only knows
how."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from airochat.domain.transcript import SavedChat


class ChatStore(Protocol):
    # What the chat is called in messages: "resumed 3 exchange(s) from NAME".
    name: str

    def open(self, wait_s: float) -> list[str]:
        """Hold the chat for this process before anything else happens (the model is not
        loaded yet): one open in another process is refused after `wait_s`, naming its pid.
        Returns notes on what was tidied."""
        ...

    def load(self) -> SavedChat | None:
        """The kept chat, checked whole (a bad one raises and changes nothing); None when
        nothing is kept yet."""
        ...

    def save(self, saved: SavedChat) -> None:
        """Keep this state of the chat, all or nothing; StorageError when it cannot."""
        ...

    def cache_file(self) -> Path | None:
        """Where the model's KV cache of this chat is kept (None: it is not)."""
        ...

    def close(self) -> None:
        """Let go of the chat (and of anything held for it, such as a lock file)."""
        ...
