"""The chat library: every chat of `run` and `ask` kept as it happens in one SQLite database
(adapters/chat_db.py), found again by `airochat chats` (list, search, show, export, import,
rm) and resumed with `-c` / `--chat ID`.

`LibraryStore` is the library as a `ChatStore` (services/chat_store.py): one chat, held by one
process at a time (a lock file per chat beside the database, naming the holder's pid), saved
in one transaction per change, with the model's KV cache in a file per chat and model beside
the database, all of them within a size cap (least recently used dropped first).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from airochat.adapters import locations
from airochat.adapters.chat_db import ChatDb, ChatDbError, StoredChat
from airochat.adapters.session_lock import SessionLock, SessionLockedError
from airochat.adapters.storage import StorageError, atomic_write_text
from airochat.domain.chat_library import (
    Branch,
    ChatSummary,
    SearchHit,
    fts_query,
    matching_lines,
    parse_age,
    title_of,
    to_markdown,
)
from airochat.domain.transcript import SavedChat
from airochat.errors import InputFileError, UsageError
from airochat.services import session_file
from airochat.services.chat import Chat
from airochat.services.chat_store import ChatStore

DB_NAME = "chats.db"


def db_path() -> Path:
    return locations.data_dir() / DB_NAME


def cache_dir(db: Path) -> Path:
    return db.with_name("chat-cache")


def _lock(db: Path, chat_id: int) -> SessionLock:
    return SessionLock(db.with_name(f"chat-{chat_id}"))


def _cache_files(db: Path, chat_id: int) -> list[Path]:
    folder = cache_dir(db)
    return sorted(folder.glob(f"chat-{chat_id}-*.kv")) if folder.is_dir() else []


class LibraryStore:
    """One chat of the library (a new one until its first save gives it an id)."""

    def __init__(
        self, db: Path, chat_id: int | None, model_ref: str, cache_max_bytes: int, required: bool
    ) -> None:
        self.db_file = db
        self.chat_id = chat_id
        self.model_ref = model_ref
        self.cache_max_bytes = cache_max_bytes  # all the chats' caches together
        self.required = required  # resuming a chat: a library that cannot open is an error
        self.name = f"chat {chat_id}" if chat_id else "the chat library"
        self.db: ChatDb | None = None
        self._lock: SessionLock | None = None
        self._path: list[int] = []  # turn ids of the branch kept, first to last
        self._kept: SavedChat | None = None
        self.unsaved = ""  # why the chat goes on in memory only ("" : it is kept)

    # -- the ChatStore protocol -----------------------------------------------------------

    def open(self, wait_s: float) -> list[str]:
        try:
            self.db = ChatDb.open(self.db_file)
        except ChatDbError as exc:
            if self.required:
                raise
            self.unsaved = str(exc)
            return [f"{exc}; this chat goes on unsaved"]
        if self.chat_id is not None:
            if self.db.summary(self.chat_id) is None:
                raise UsageError(f"no chat {self.chat_id} in the library (`airochat chats`)")
            self._hold(self.chat_id, wait_s)
            for kv in _cache_files(self.db_file, self.chat_id):
                os.utime(kv)  # used now: the last to be dropped from the cache cap
        return []

    def _hold(self, chat_id: int, wait_s: float) -> None:
        lock = _lock(self.db_file, chat_id)
        try:
            lock.acquire(wait_s)
        except SessionLockedError as exc:
            holder = str(exc).split("(", 1)[-1].split(")", 1)[0]
            raise SessionLockedError(
                f"chat {chat_id} is open in another airochat ({holder}); close that one first"
            ) from None
        self._lock = lock

    def load(self) -> SavedChat | None:
        if self.db is None or self.chat_id is None:
            return None
        stored = self.db.load(self.chat_id)
        if stored is None:
            return None
        self._path, self._kept = stored.path, stored.saved
        return stored.saved

    def save(self, saved: SavedChat) -> None:
        if self.db is None:
            return
        if not saved.turns and self.chat_id is not None:
            self._detach()  # /reset: the next message starts a new chat; this one stays
            return
        kept = self._kept.turns if self._kept is not None else []
        common = 0
        for a, b in zip(kept, saved.turns, strict=False):
            if a != b:
                break
            common += 1
        new = self.chat_id is None
        try:
            self.chat_id, self._path = self.db.save(
                self.chat_id, saved, self._path, common, self.model_ref
            )
        except ChatDbError as exc:
            raise StorageError(str(exc)) from None
        self._kept = replace(saved, turns=list(saved.turns))
        if new:
            self.name = f"chat {self.chat_id}"
            self._hold(self.chat_id, 0.0)

    def _detach(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self.chat_id, self._path, self._kept = None, [], None
        self.name = "the chat library"

    def cache_file(self) -> Path | None:
        if self.db is None or self.chat_id is None or self._kept is None:
            return None
        model = hashlib.sha256(self._kept.model.encode()).hexdigest()[:12]
        folder = cache_dir(self.db_file)
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"chat-{self.chat_id}-{model}.kv"

    def close(self) -> None:
        if self.db is not None:
            prune_caches(self.db_file, self.cache_max_bytes)
            self.db.close()
            self.db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- branches and titles (the REPL's /title, /alt, /rewind) ---------------------------

    def set_title(self, title: str) -> None:
        if self.db is None or self.chat_id is None:
            raise UsageError("the chat is not in the library yet: send a message first")
        try:
            self.db.set_title(self.chat_id, title)
        except ChatDbError as exc:
            raise StorageError(str(exc)) from None

    def alternatives(self, turn: int) -> list[SavedChat]:
        """The chat as it was with each alternative of exchange `turn` (0-based) of the
        branch kept (each /regen adds one), oldest first."""
        if self.db is None or self.chat_id is None or self._kept is None:
            return []
        parent = self._path[turn - 1] if turn > 0 else None
        kept = self._kept
        return [
            replace(kept, turns=[t for _, t in self.db.path_of(child)])
            for child in self.db.children(self.chat_id, parent)
        ]


def flip(chat: Chat, store: ChatStore | None, step: int = 1) -> list[str]:
    """`/alt`: the last exchange becomes its next alternative (the chat goes on from it)."""
    if not isinstance(store, LibraryStore):
        raise UsageError("alternatives are kept in the chat library only (not with --session)")
    turns = chat.conversation.turns
    if not turns:
        raise UsageError("nothing to flip yet")
    alts = store.alternatives(len(turns) - 1)
    last = chat.saved().turns[-1]
    now = next((i for i, a in enumerate(alts) if a.turns[-1] == last), -1)
    if len(alts) < 2:
        return ["no alternative yet (/regen answers again and keeps this reply too)"]
    pick = (now + step) % len(alts)
    notes = chat.restore(replace(alts[pick], sampling=asdict(chat.sampling)), store.name)
    return [f"alternative {pick + 1} of {len(alts)} of exchange {len(turns)}", *notes]


def set_title(store: ChatStore | None, title: str) -> str:
    """`/title TEXT`: the chat's name in the library."""
    if not isinstance(store, LibraryStore):
        raise UsageError("titles are kept in the chat library only (not with --session)")
    text = title_of(title)
    if not text:
        raise UsageError("usage: /title TEXT")
    store.set_title(text)
    return f"titled: {text}"


def rewind(chat: Chat, count: int) -> str:
    """`/rewind N`: back N exchanges; what is sent next starts a new branch (the old one is
    kept in the library)."""
    turns = len(chat.conversation.turns)
    if not 1 <= count <= turns:
        raise UsageError(
            f"/rewind N goes back 1 to {turns} exchange(s)" if turns else "nothing to rewind"
        )
    for _ in range(count):
        chat.undo()
    return (
        f"back to exchange {turns - count}; what you send next starts a new branch (the old "
        "one stays: airochat chats show ID --branches)"
    )


def prune_caches(db: Path, max_bytes: int) -> list[Path]:
    """Keep the chats' KV caches within `max_bytes` together, the least recently used
    dropped first."""
    folder = cache_dir(db)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("chat-*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
    total, dropped = 0, []
    for f in files:
        total += f.stat().st_size
        if total > max_bytes:
            f.unlink(missing_ok=True)
            dropped.append(f)
    return dropped


# -- what `airochat chats` does ---------------------------------------------------------------


def _open(db: Path) -> ChatDb | None:
    """The library to read, None when nothing was kept yet."""
    return ChatDb.open(db) if db.exists() else None


def find_chat(db: Path, chat_id: int | None, model: str | None) -> ChatSummary | None:
    """The chat `--chat ID` names, else the latest (of `model` when one is named)."""
    library = _open(db)
    if library is None:
        if chat_id is not None:
            raise UsageError(f"no chat {chat_id}: no chat has been kept yet")
        return None
    try:
        if chat_id is not None:
            found = library.summary(chat_id)
            if found is None:
                raise UsageError(f"no chat {chat_id} in the library (`airochat chats`)")
            return found
        return library.latest(model)
    finally:
        library.close()


def list_chats(db: Path) -> list[ChatSummary]:
    library = _open(db)
    if library is None:
        return []
    try:
        chats = library.chats()
    finally:
        library.close()
    sizes: dict[int, int] = {}
    folder = cache_dir(db)
    for kv in folder.glob("chat-*-*.kv") if folder.is_dir() else []:
        key = kv.name.split("-")[1]
        if key.isdigit():
            sizes[int(key)] = sizes.get(int(key), 0) + kv.stat().st_size
    return [replace(c, cache_bytes=sizes.get(c.id)) for c in chats]


def search(db: Path, words: list[str], limit: int = 50) -> list[SearchHit]:
    query = fts_query(words)
    library = _open(db)
    if library is None:
        return []
    try:
        rows = library.search(query, limit)
    finally:
        library.close()
    hits = []
    for chat_id, title, pos, message, reply in rows:
        lines = matching_lines(message, words) + matching_lines(reply, words)
        hits.append(SearchHit(chat_id, title, pos + 1, lines[:3]))
    return hits


def _stored(db: Path, chat_id: int) -> tuple[ChatDb, StoredChat]:
    library = _open(db)
    stored = library.load(chat_id) if library is not None else None
    if library is None or stored is None:
        if library is not None:
            library.close()
        raise UsageError(f"no chat {chat_id} in the library (`airochat chats`)")
    return library, stored


def show(db: Path, chat_id: int) -> tuple[ChatSummary, SavedChat]:
    library, stored = _stored(db, chat_id)
    library.close()
    return stored.summary, stored.saved


def branches(db: Path, chat_id: int) -> list[Branch]:
    """The branches of a chat other than the one in force, each from where it leaves it."""
    library, stored = _stored(db, chat_id)
    try:
        turns = library.all_turns(chat_id)
    finally:
        library.close()
    in_force = set(stored.path)
    parents = {t[1] for t in turns}
    by_id = {t[0]: t for t in turns}
    out = []
    for leaf in (t for t in turns if t[0] not in parents and t[0] not in in_force):
        chain = [leaf]
        while chain[-1][1] is not None and chain[-1][1] not in in_force:
            chain.append(by_id[chain[-1][1]])
        chain.reverse()
        out.append(Branch(chain[0][2], [(t[3], t[4]) for t in chain]))
    return out


def export(db: Path, chat_id: int, out: Path) -> str:
    """The chat to `out`: markdown (.md) or a session file (.json, read by --session and
    /load)."""
    kind = out.suffix.lower()
    if kind not in (".md", ".json"):
        raise UsageError(f"export to a .md or .json file, not {out.name!r}")
    summary, saved = show(db, chat_id)
    text = to_markdown(summary, saved) if kind == ".md" else session_file.dumps(saved)
    atomic_write_text(out, text)
    return f"wrote chat {chat_id} ({len(saved.turns)} exchange(s)) to {out}"


def import_files(db: Path, files: list[Path]) -> list[str]:
    """Session files into the library, each as a new chat; all are checked before any is
    kept."""
    chats = []
    for f in files:
        try:
            chats.append(session_file.read(f))
        except StorageError as exc:
            raise InputFileError(str(exc)) from None
    library = ChatDb.open(db)
    try:
        said = []
        for f, saved in zip(files, chats, strict=True):
            chat_id, _ = library.save(None, saved, [], 0, saved.model)
            said.append(f"imported {f} as chat {chat_id} ({len(saved.turns)} exchange(s))")
        return said
    finally:
        library.close()


def remove(db: Path, ids: list[int], older_than: str | None) -> list[str]:
    """Delete chats for real (and their caches); one held by a running airochat is left."""
    library = _open(db)
    if library is None:
        return ["no chat has been kept yet"]
    try:
        if older_than is not None:
            ids = [*ids, *library.older_than(time.time() - parse_age(older_than))]
        missing = [i for i in ids if library.summary(i) is None]
        if missing:
            raise UsageError(f"no chat {missing[0]} in the library (`airochat chats`)")
        said, gone = [], []
        for chat_id in dict.fromkeys(ids):
            lock = _lock(db, chat_id)
            try:
                lock.acquire(0.0)
            except SessionLockedError as exc:
                said.append(f"kept chat {chat_id}: {str(exc).split(';')[0]}")
                continue
            gone.append((chat_id, lock))
        library.delete([i for i, _ in gone])
    finally:
        library.close()
    for chat_id, lock in gone:
        for kv in _cache_files(db, chat_id):
            kv.unlink(missing_ok=True)
        lock.release()
    said.append(f"deleted {len(gone)} chat(s)")
    return said


def as_json(chats: list[ChatSummary]) -> str:
    return json.dumps([c.to_json() for c in chats], ensure_ascii=False, indent=1)
