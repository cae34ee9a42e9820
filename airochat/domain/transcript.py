"""The session file: a chat and its settings as versioned JSON (reading and checking it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airochat.errors import AirochatError

SCHEMA = "airochat-session"
VERSION = 2


class SessionFileError(AirochatError):
    """A session file that cannot be used; it is left untouched."""


@dataclass
class SavedTurn:
    message: str
    reply: str
    reply_tokens: list[int]
    finish_reason: str
    reply_prefix: str = ""  # a roleplay speaker's "Name:" that opened the reply


@dataclass
class SavedChat:
    model: str
    template: str
    system: str
    history: bool
    sampling: dict[str, Any]
    turns: list[SavedTurn] = field(default_factory=list)
    scene: dict[str, Any] | None = None  # a roleplay scene, as its file would hold it
    # The first turn the model still reads; those before it slid out of its window (kept).
    window: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "model": self.model,
            "template": self.template,
            "system": self.system,
            "history": self.history,
            "sampling": self.sampling,
            "turns": [vars(t) for t in self.turns],
            **({"scene": self.scene} if self.scene else {}),
            **({"window": self.window} if self.window else {}),
        }


def _need(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SessionFileError(f"{where}: '{key}' is missing or has the wrong type")
    return value


def _token_ids(raw: Any) -> list[int]:
    """Saved reply ids, or none when they are not token ids (a server's -1): the reply is
    then tokenized again from its text -- a resume repairs, never refuses."""
    if isinstance(raw, list) and all(type(t) is int and t >= 0 for t in raw):
        return raw
    return []


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 kept a roleplay scene under `extra.scene`; v2 has it at the top."""
    extra = data.pop("extra", None)
    if isinstance(extra, dict) and isinstance(extra.get("scene"), dict):
        data["scene"] = extra["scene"]
    return data


# version N -> N + 1; an older file is upgraded in memory step by step (and saved as the
# current version next time), a newer one is refused.
UPGRADES = {1: _v1_to_v2}


def upgrade(data: dict[str, Any], where: str) -> dict[str, Any]:
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionFileError(f"{where}: bad version {version!r}")
    if version > VERSION:
        raise SessionFileError(
            f"{where} was written by a newer airochat (session version {version}); upgrade"
        )
    while version < VERSION:
        data = UPGRADES[version](dict(data))
        version += 1
    return data


def parse(data: Any, where: str) -> SavedChat:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SessionFileError(f"{where} is not an airochat session file")
    data = upgrade(data, where)
    turns = []
    for i, raw in enumerate(_need(data, "turns", list, where)):
        at = f"{where}: turn {i + 1}"
        if not isinstance(raw, dict):
            raise SessionFileError(f"{at} is not an object")
        tokens = _token_ids(raw.get("reply_tokens"))
        prefix = raw.get("reply_prefix", "")
        if not isinstance(prefix, str):
            raise SessionFileError(f"{at}: 'reply_prefix' is missing or has the wrong type")
        turns.append(
            SavedTurn(
                message=_need(raw, "message", str, at),
                reply=_need(raw, "reply", str, at),
                reply_tokens=tokens,
                finish_reason=_need(raw, "finish_reason", str, at),
                reply_prefix=prefix,
            )
        )
    scene = data.get("scene")
    if scene is not None and not isinstance(scene, dict):
        raise SessionFileError(f"{where}: 'scene' should be a mapping")
    window = data.get("window", 0)
    return SavedChat(
        model=_need(data, "model", str, where),
        template=_need(data, "template", str, where),
        system=_need(data, "system", str, where),
        history=_need(data, "history", bool, where),
        sampling=_need(data, "sampling", dict, where),
        turns=turns,
        scene=scene,
        window=window if type(window) is int and 0 <= window <= len(turns) else 0,
    )
