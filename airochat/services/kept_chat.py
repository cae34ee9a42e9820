"""A chat's life on disk, in one object for `ask`, the REPL and `/save`: resume what its
`ChatStore` keeps (options typed on the command line winning, said once), save after each
change, keep the model's KV cache with it, and say what happened in one-line notes.

The chat goes on in memory when its store cannot be written: the REPL says so once and keeps
going; `ask` (a script, which must not lose a turn silently) gets the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from airochat.adapters.kv_file import kv_path
from airochat.adapters.storage import StorageError
from airochat.domain.transcript import SavedChat
from airochat.errors import UsageError
from airochat.services import session_cache, session_file
from airochat.services.chat import Chat
from airochat.services.chat_store import ChatStore


class KeptChat:
    def __init__(
        self, chat: Chat, store: ChatStore | None = None, cache_max_bytes: int | None = None
    ) -> None:
        self.chat = chat
        self.store = store
        self.cache_max_bytes = cache_max_bytes  # None: the model's cache is not kept
        self._kept: SavedChat | None = None  # what the store holds, to write only on change
        self._failed = ""  # the save error said last, to say it once
        self._fresh: SavedChat | None = None  # a new chat as it opened (its settings)
        self.resumed = False  # the chat goes on from what the store kept

    def resume(self, given: Mapping[str, object]) -> list[str]:
        """Continue the chat the store keeps, if any; the options in `given` (typed on the
        command line) win over its settings."""
        saved = self.store.load() if self.store is not None else None
        if self.store is None or saved is None:
            self._fresh = self.chat.saved()  # a new chat: written once anything changes
            return []
        notes = [f"resumed {len(saved.turns)} exchange(s) from {self.store.name}"]
        self.resumed = bool(saved.turns)
        notes += self.chat.restore(saved, self.store.name)
        notes += apply_given(self.chat, given)
        self._kept = self.chat.saved() if self.chat.started else None
        cache = self.store.cache_file()
        if self.cache_max_bytes is not None and cache is not None:
            said = session_cache.load(self.chat, cache)
            notes += [said] if said else []
        return notes

    def save(self) -> None:
        """Write the chat to its store if it changed (a chat not yet started is not written
        until it starts); StorageError when the store cannot be written."""
        if self.store is None:
            return
        saved = self.chat.saved()
        fresh = self._fresh if self._fresh is not None else saved
        unchanged = self._kept is None and not self.chat.started and saved == fresh
        if saved == self._kept or unchanged:
            return
        self.store.save(saved)
        self._kept = saved

    def autosave(self) -> str | None:
        """`save()` after every change (a turn, /set, /undo ...); a failure is returned once,
        as the error line to show, and the chat goes on in memory."""
        try:
            self.save()
        except StorageError as exc:
            said = None if str(exc) == self._failed else str(exc)
            self._failed = str(exc)
            return f"{said} -- the chat goes on unsaved (/save PATH to keep it)" if said else None
        self._failed = ""
        return None

    def save_cache(self) -> list[str]:
        """Keep the model's cache with the store's chat (at the end of a process)."""
        cache = self.store.cache_file() if self.store is not None else None
        if cache is None or self.cache_max_bytes is None or self._kept is None:
            return []
        said = session_cache.save(self.chat, cache, self.cache_max_bytes)
        return [said] if said else []

    def cache_size(self) -> int | None:
        cache = self.store.cache_file() if self.store is not None else None
        return session_cache.size(cache) if cache is not None else None

    def save_as(self, path: Path | None) -> list[str]:
        """`/save [FILE]`: the chat to FILE (else to its store), with the model's cache
        beside it as FILE.kv."""
        saved = self.chat.saved()
        if path is None:
            if self.store is None:
                raise UsageError("usage: /save FILE")
            self.store.save(saved)
            self._kept = saved
            return [
                f"Saved {len(saved.turns)} exchange(s) to {self.store.name}",
                *self.save_cache(),
            ]
        session_file.write(path, saved)
        notes = [f"Saved {len(saved.turns)} exchange(s) to {path}"]
        if self.cache_max_bytes is not None:
            said = session_cache.save(self.chat, kv_path(path), self.cache_max_bytes)
            notes += [said] if said else []
        return notes

    def load_from(self, path: Path) -> list[str]:
        """`/load FILE`: the chat becomes the file's (a bad file changes nothing)."""
        saved = session_file.read(path)
        notes = self.chat.restore(saved, str(path))
        return [f"Loaded {len(saved.turns)} exchange(s) from {path}", *notes]

    def close(self) -> None:
        """Let go of the store (the chat's lock)."""
        if self.store is not None:
            self.store.close()


def apply_given(chat: Chat, given: Mapping[str, object]) -> list[str]:
    """Options given on the command line win over the resumed chat's, with a note."""
    notes = []
    sampling = {k: v for k, v in given.items() if hasattr(chat.sampling, k)}
    for key, value in sampling.items():
        before = getattr(chat.sampling, key)
        if before != value:
            notes.append(f"--{key.replace('_', '-')} {value} overrides the session's {before}")
    chat.set_sampling(**sampling)
    if "system" in given and given["system"] != chat.conversation.system:
        chat.set_system(str(given["system"]))
        notes.append("--system overrides the session's system prompt")
    if "template" in given and given["template"] != chat.template.name:
        notes.append(f"--template {given['template']} overrides the session's {chat.template.name}")
        chat.set_template(str(given["template"]))
    if "history" in given and given["history"] != chat.conversation.history:
        chat.set_history(bool(given["history"]))
        notes.append("--no-history overrides the session's memory")
    return notes
