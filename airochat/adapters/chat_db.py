"""The chat library's database: one SQLite file (stdlib sqlite3) in the user data dir.

WAL (readers never wait for a writer; a writer waits up to `BUSY_S` for another), mode 0600,
`secure_delete` on (a deleted chat's bytes are overwritten, not left in free pages), the schema
versioned with `PRAGMA user_version` and upgraded by `MIGRATIONS` in one transaction. Each
save is one transaction, so a process killed at any moment leaves the file as it was before
that save or after it.

Turns form a tree: each has a parent (None for a chat's first), and a chat's `head` is the
last turn of the branch in force. A regenerated reply or a rewound chat adds a sibling; the
old branch stays. Messages and replies are indexed with FTS5 (an external-content table kept
by triggers); deleting runs FTS5's `optimize` and a WAL checkpoint so no trace of a deleted
chat is left in the index, free pages or the WAL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airochat.domain.chat_library import ChatSummary, title_of
from airochat.domain.transcript import SavedChat, SavedTurn
from airochat.errors import AirochatError

BUSY_S = 10.0

_V1 = """
CREATE TABLE chats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL DEFAULT '',
    titled INTEGER NOT NULL DEFAULT 0,
    model TEXT NOT NULL DEFAULT '',
    model_ref TEXT NOT NULL DEFAULT '',
    template TEXT NOT NULL DEFAULT '',
    system TEXT NOT NULL DEFAULT '',
    history INTEGER NOT NULL DEFAULT 1,
    sampling TEXT NOT NULL DEFAULT '{}',
    scene TEXT,
    window INTEGER NOT NULL DEFAULT 0,
    head INTEGER,
    turn_count INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX chats_updated ON chats(updated);
CREATE TABLE turns (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    parent INTEGER REFERENCES turns(id),
    pos INTEGER NOT NULL,
    message TEXT NOT NULL,
    reply TEXT NOT NULL,
    reply_tokens BLOB NOT NULL,
    finish_reason TEXT NOT NULL,
    reply_prefix TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX turns_chat ON turns(chat_id, parent);
CREATE VIRTUAL TABLE turns_fts USING fts5(
    message, reply, content='turns', content_rowid='id'
);
CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
    INSERT INTO turns_fts(rowid, message, reply) VALUES (new.id, new.message, new.reply);
END;
CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
    INSERT INTO turns_fts(turns_fts, rowid, message, reply)
    VALUES ('delete', old.id, old.message, old.reply);
END;
"""

# MIGRATIONS[n] takes a database at user_version n to n + 1.
MIGRATIONS = [_V1]
VERSION = len(MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    """A script's statements, one at a time (a trigger's body holds semicolons of its own)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""


class ChatDbError(AirochatError):
    """The chat library cannot be used (corrupt, newer, not writable): one line."""


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text:
        return (
            "it is corrupt (not an SQLite database, or damaged): move it aside and a new "
            "library starts there (`sqlite3 FILE .recover` may save its chats)"
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return "not allowed to write there"
    if "full" in text:
        return "the disk is full"
    if "locked" in text or "busy" in text:
        return f"another airochat kept it busy for {BUSY_S:.0f} s"
    return str(exc)


@dataclass(frozen=True)
class StoredChat:
    summary: ChatSummary
    saved: SavedChat
    path: list[int]  # turn ids of the branch in force, first to last


def _tokens(blob: bytes) -> list[int]:
    ids = array("i")
    ids.frombytes(blob)
    return ids.tolist()


def _blob(tokens: list[int]) -> bytes:
    return array("i", tokens).tobytes()


_SUMMARY = "id, title, model, turn_count, created, updated, model_ref"


def _summary(row: Any) -> ChatSummary:
    return ChatSummary(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


class ChatDb:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> ChatDb:
        """Open (creating it, mode 0600, in a 0700 folder) and bring the schema up to date."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            why = "not allowed to write there" if exc.errno in (1, 13, 30) else exc.strerror
            raise ChatDbError(f"cannot keep chats in {path}: {why}") from None
        conn = sqlite3.connect(path, timeout=BUSY_S, isolation_level=None)
        db = cls(conn, path)
        try:
            with db._guard("open"):
                db._setup()
        except BaseException:
            conn.close()
            raise
        return db

    def _setup(self) -> None:
        c = self.conn
        c.execute("PRAGMA secure_delete = ON")
        c.execute("PRAGMA foreign_keys = ON")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise ChatDbError(
                f"{self.path} was written by a newer airochat (schema {version}, this one "
                f"knows {VERSION}); upgrade airochat"
            )
        if c.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise ChatDbError(f"cannot keep chats in {self.path}: WAL mode was refused")
        c.execute("PRAGMA synchronous = FULL")
        if version < VERSION:
            with self.transaction():
                now = c.execute("PRAGMA user_version").fetchone()[0]  # another may have won
                for step in MIGRATIONS[now:]:
                    for statement in _statements(step):
                        c.execute(statement)
                c.execute(f"PRAGMA user_version = {VERSION}")

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise ChatDbError(f"the chat library {self.path}: {_reason(exc)}") from None
        except UnicodeEncodeError:  # a lone surrogate: bytes that were not UTF-8
            raise ChatDbError(
                f"the chat library {self.path}: text that is not UTF-8 cannot be kept"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write, all or nothing (BEGIN IMMEDIATE: writers queue here, not mid-way)."""
        with self._guard("write"):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # -- reading --------------------------------------------------------------------------

    def summary(self, chat_id: int) -> ChatSummary | None:
        with self._guard("read"):
            row = self.conn.execute(
                f"SELECT {_SUMMARY} FROM chats WHERE id = ?", (chat_id,)
            ).fetchone()
        return _summary(row) if row else None

    def chats(self, limit: int | None = None) -> list[ChatSummary]:
        """Newest first."""
        with self._guard("read"):
            rows = self.conn.execute(
                f"SELECT {_SUMMARY} FROM chats ORDER BY updated DESC, id DESC LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [_summary(r) for r in rows]

    def latest(self, model: str | None) -> ChatSummary | None:
        """The chat used last (of `model`, as typed or as named when loaded, if given)."""
        where, args = ("WHERE model_ref = ? OR model = ?", (model, model)) if model else ("", ())
        with self._guard("read"):
            row = self.conn.execute(
                f"SELECT {_SUMMARY} FROM chats {where} ORDER BY updated DESC, id DESC LIMIT 1",
                args,
            ).fetchone()
        return _summary(row) if row else None

    def older_than(self, when: float) -> list[int]:
        with self._guard("read"):
            rows = self.conn.execute("SELECT id FROM chats WHERE updated < ?", (when,))
            return [r[0] for r in rows.fetchall()]

    def path_of(self, head: int | None) -> list[tuple[int, SavedTurn]]:
        """The branch that ends at turn `head`, first turn first."""
        if head is None:
            return []
        with self._guard("read"):
            rows = self.conn.execute(
                """WITH RECURSIVE up(id, parent) AS (
                       SELECT id, parent FROM turns WHERE id = ?
                       UNION ALL SELECT t.id, t.parent FROM turns t JOIN up ON t.id = up.parent)
                   SELECT t.id, t.message, t.reply, t.reply_tokens, t.finish_reason,
                          t.reply_prefix
                   FROM up JOIN turns t ON t.id = up.id ORDER BY t.pos""",
                (head,),
            ).fetchall()
        return [(r[0], SavedTurn(r[1], r[2], _tokens(r[3]), r[4], r[5])) for r in rows]

    def load(self, chat_id: int) -> StoredChat | None:
        with self._guard("read"):
            row = self.conn.execute(
                f"SELECT {_SUMMARY}, template, system, history, sampling, scene, head, window "
                "FROM chats WHERE id = ?",
                (chat_id,),
            ).fetchone()
        if row is None:
            return None
        path = self.path_of(row[12])
        saved = SavedChat(
            model=row[2],
            template=row[7],
            system=row[8],
            history=bool(row[9]),
            sampling=json.loads(row[10]),
            turns=[t for _, t in path],
            scene=json.loads(row[11]) if row[11] else None,
            window=min(int(row[13]), len(path)),
        )
        return StoredChat(_summary(row), saved, [i for i, _ in path])

    def all_turns(self, chat_id: int) -> list[tuple[int, int | None, int, str, str]]:
        """Every turn of a chat, on every branch: (id, parent, pos, message, reply)."""
        with self._guard("read"):
            rows = self.conn.execute(
                "SELECT id, parent, pos, message, reply FROM turns WHERE chat_id = ? ORDER BY id",
                (chat_id,),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def children(self, chat_id: int, parent: int | None) -> list[int]:
        with self._guard("read"):
            rows = self.conn.execute(
                "SELECT id FROM turns WHERE chat_id = ? AND parent IS ? ORDER BY id",
                (chat_id, parent),
            ).fetchall()
        return [r[0] for r in rows]

    def search(self, query: str, limit: int) -> list[tuple[int, str, int, str, str]]:
        """Turns that match an FTS5 query: (chat id, title, pos, message, reply), the turns
        said last first (FTS5 walks its index by rowid, newest first, and stops at `limit`)."""
        with self._guard("search"):
            rows = self.conn.execute(
                """SELECT t.chat_id, c.title, t.pos, t.message, t.reply
                   FROM (SELECT rowid AS id FROM turns_fts WHERE turns_fts MATCH ?
                         ORDER BY rowid DESC LIMIT ?) f
                   JOIN turns t ON t.id = f.id JOIN chats c ON c.id = t.chat_id
                   ORDER BY t.id DESC""",
                (query, limit),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # -- writing --------------------------------------------------------------------------

    def save(
        self,
        chat_id: int | None,
        saved: SavedChat,
        path: list[int],
        common: int,
        model_ref: str,
    ) -> tuple[int, list[int]]:
        """Keep `saved` as the chat's branch in force, in one transaction: its first `common`
        turns are `path`'s, the rest are added after them (or found, when the same turn is
        already there). Returns the chat's id and the branch's turn ids."""
        now = time.time()
        with self.transaction() as c:
            if chat_id is None:
                chat_id = c.execute(
                    "INSERT INTO chats (model_ref, created, updated) VALUES (?, ?, ?)",
                    (model_ref, now, now),
                ).lastrowid
                assert chat_id is not None
            ids = list(path[:common])
            for pos, turn in enumerate(saved.turns[common:], common):
                ids.append(self._turn(c, chat_id, ids[-1] if ids else None, pos, turn, now))
            self._update(c, chat_id, saved, ids, now)
        return chat_id, ids

    @staticmethod
    def _turn(
        c: sqlite3.Connection, chat_id: int, parent: int | None, pos: int, t: SavedTurn, now: float
    ) -> int:
        row = (t.message, t.reply, _blob(t.reply_tokens), t.finish_reason, t.reply_prefix)
        found = c.execute(
            "SELECT id FROM turns WHERE chat_id = ? AND parent IS ? AND message = ? AND "
            "reply = ? AND reply_tokens = ? AND finish_reason = ? AND reply_prefix = ?",
            (chat_id, parent, *row),
        ).fetchone()
        if found:
            return int(found[0])
        new = c.execute(
            "INSERT INTO turns (chat_id, parent, pos, message, reply, reply_tokens, "
            "finish_reason, reply_prefix, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (chat_id, parent, pos, *row, now),
        ).lastrowid
        assert new is not None
        return new

    @staticmethod
    def _update(
        c: sqlite3.Connection, chat_id: int, saved: SavedChat, ids: list[int], now: float
    ) -> None:
        title = title_of(saved.turns[0].message) if saved.turns else None
        c.execute(
            """UPDATE chats SET model = ?, template = ?, system = ?, history = ?, sampling = ?,
                   scene = ?, window = ?, head = ?, turn_count = ?, updated = ?,
                   title = CASE WHEN titled OR ? IS NULL THEN title ELSE ? END
               WHERE id = ?""",
            (
                saved.model, saved.template, saved.system, int(saved.history),
                json.dumps(saved.sampling), json.dumps(saved.scene) if saved.scene else None,
                saved.window, ids[-1] if ids else None, len(ids), now, title, title, chat_id,
            ),
        )  # fmt: skip

    def set_title(self, chat_id: int, title: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE chats SET title = ?, titled = 1 WHERE id = ?", (title, chat_id))

    def delete(self, ids: list[int]) -> int:
        """Delete chats for real: their rows, their index entries (merged away), their pages
        (zeroed by secure_delete), and the WAL frames that held them (checkpointed, emptied)."""
        gone = 0
        with self.transaction() as c:
            for chat_id in ids:
                c.execute("UPDATE chats SET head = NULL WHERE id = ?", (chat_id,))
                c.execute("DELETE FROM turns WHERE chat_id = ?", (chat_id,))
                gone += c.execute("DELETE FROM chats WHERE id = ?", (chat_id,)).rowcount
            c.execute("INSERT INTO turns_fts(turns_fts) VALUES ('optimize')")
        with self._guard("tidy"):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone
