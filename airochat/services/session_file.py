"""Session files (`--session FILE`, `/save`, `/load`): a chat and its settings as versioned
JSON, written atomically with mode 0600, its model cache beside it as FILE.kv. Reading checks
the whole file -- schema, values -- before the chat is touched (`Chat.restore` checks the rest).
`SessionFile` is the session file as a `ChatStore`."""

from __future__ import annotations

import json
from pathlib import Path

from airochat.adapters.kv_file import kv_path
from airochat.adapters.session_lock import SessionLock
from airochat.adapters.storage import atomic_write_text, read_json, remove_stale_temps
from airochat.domain.transcript import SavedChat, SessionFileError, parse
from airochat.services.chat import Chat


def dumps(saved: SavedChat) -> str:
    return json.dumps(saved.to_json(), ensure_ascii=False, indent=1) + "\n"


def write(path: Path, saved: SavedChat) -> None:
    atomic_write_text(path, dumps(saved))


def read(path: Path) -> SavedChat:
    """The file's chat, checked whole before any chat changes."""
    data = read_json(path)
    try:  # a lone surrogate (JSON's "\\udc80") could never be written back
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SessionFileError(
            f"{path} has text that is not valid Unicode (a lone surrogate); left untouched"
        ) from None
    return parse(data, str(path))


def save(chat: Chat, path: Path) -> None:
    write(path, chat.saved())


def load(chat: Chat, path: Path) -> SavedChat:
    """Replace the chat with the file's; a bad file raises and changes nothing."""
    saved = read(path)
    chat.restore(saved, str(path))
    return saved


class SessionFile:
    """A chat kept in one JSON file, locked for one process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._lock = SessionLock(path)

    def open(self, wait_s: float) -> list[str]:
        self._lock.acquire(wait_s)
        stale = remove_stale_temps(self.path.parent, self.path.name)
        return [f"removed {p.name}, left by an interrupted save" for p in stale]

    def load(self) -> SavedChat | None:
        return read(self.path) if self.path.exists() else None

    def save(self, saved: SavedChat) -> None:
        write(self.path, saved)

    def cache_file(self) -> Path:
        return kv_path(self.path)

    def close(self) -> None:
        self._lock.release()
