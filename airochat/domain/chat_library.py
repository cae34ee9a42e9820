"""The chat library's records, pure: a chat as listed, a search hit, a title, an age, the
search words as an FTS5 query, and a chat as markdown. No I/O here (adapters/chat_db.py keeps
them; services/library.py is what the commands call)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from airochat.domain.functions import PREAMBLE
from airochat.domain.rewoo import INTRO
from airochat.domain.transcript import SavedChat
from airochat.errors import UsageError

TITLE_CHARS = 80


@dataclass(frozen=True)
class ChatSummary:
    """One chat as `airochat chats` lists it."""

    id: int
    title: str
    model: str
    turns: int  # exchanges on the branch in force
    created: float
    updated: float  # last used
    model_ref: str = ""  # the MODEL as typed when the chat began (what -c loads again)
    cache_bytes: int | None = None  # the model's KV cache kept for it (None: none)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "model": self.model,
            "turns": self.turns,
            "created": self.created,
            "last_used": self.updated,
            "model_ref": self.model_ref,
            "cache_bytes": self.cache_bytes,
        }


@dataclass(frozen=True)
class SearchHit:
    chat_id: int
    title: str
    turn: int  # 1-based exchange number on its branch
    lines: list[str] = field(default_factory=list)  # the lines that hold a searched word


@dataclass(frozen=True)
class Branch:
    """A branch of a chat that is not the one in force: where it leaves it, and its turns."""

    after: int  # exchanges shared with the branch in force
    messages: list[tuple[str, str]]  # (message, reply) from there on


def title_of(message: str) -> str:
    """A chat's title: its first message's first non-blank line, shortened. A message in one
    of the cards' prompt shapes is titled by what the user asked, not the card's preamble
    (every plan would be "Please construct a systematic plan…", every QA "BEGININPUT")."""
    asked = _user_part(message)
    line = next((ln.strip() for ln in asked.splitlines() if ln.strip()), "")
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def _user_part(message: str) -> str:
    if message.startswith(INTRO) and "\nQuestion: " in message:
        return message.rsplit("\nQuestion: ", 1)[1]
    if message.startswith(PREAMBLE) and "\nInput: " in message:
        return message.split("\nInput: ", 1)[1].split("\n\nAvailable functions:", 1)[0]
    if message.lstrip().startswith("BEGININPUT") and "BEGININSTRUCTION\n" in message:
        return message.rsplit("BEGININSTRUCTION\n", 1)[1].split("ENDINSTRUCTION", 1)[0]
    return message


_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `2w` ... as seconds."""
    m = _AGE.match(text.lower())
    if not m:
        raise UsageError(f"--older-than takes an age such as 30d, 12h or 2w, not {text!r}")
    return float(int(m.group(1)) * _UNIT[m.group(2)])


def words_of(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w]


def fts_query(words: list[str]) -> str:
    """The searched words as an FTS5 query: every word must be there (each one quoted, so
    no word is read as FTS5 syntax)."""
    found = [w for text in words for w in words_of(text)]
    if not found:
        raise UsageError("search for at least one word (letters or digits)")
    return " ".join('"' + w.replace('"', '""') + '"' for w in found)


def matching_lines(text: str, words: list[str], limit: int = 3) -> list[str]:
    """The lines of `text` that hold one of `words` (whole words, any case)."""
    wanted = {w for text_ in words for w in words_of(text_)}
    out = []
    for line in text.splitlines():
        if wanted & set(words_of(line)):
            out.append(line.strip())
            if len(out) == limit:
                break
    return out


def to_markdown(summary: ChatSummary, saved: SavedChat) -> str:
    """A chat as a markdown document: its title, model, system prompt, then each exchange."""
    out = [f"# {summary.title or f'Chat {summary.id}'}", ""]
    out.append(f"- model: {saved.model or summary.model}")
    out.append(f"- template: {saved.template}")
    out.append(f"- exchanges: {len(saved.turns)}")
    if saved.system:
        out += ["", "## System", "", saved.system]
    for i, turn in enumerate(saved.turns, 1):
        out += ["", f"## {i}. You", "", turn.message, "", "## Assistant", ""]
        out.append(turn.reply_prefix + turn.reply)
    return "\n".join(out) + "\n"
