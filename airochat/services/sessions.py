"""Saving and loading chats: the session file, written atomically with mode 0600."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from airochat.adapters.storage import read_json, write_json
from airochat.domain.templates import Template
from airochat.domain.transcript import SavedChat, parse
from airochat.services.chat import ChatSession


def save_session(session: ChatSession, path: Path, extra: dict[str, Any] | None = None) -> None:
    write_json(path, session.to_saved(extra).to_json())


def load_session(
    session: ChatSession, path: Path, template_by_name: Callable[[str], Template]
) -> SavedChat:
    """Replace the session's chat with the file's; a bad file raises and changes nothing."""
    saved = parse(read_json(path), str(path))
    template = template_by_name(saved.template)
    session.restore(saved, template)
    return saved
