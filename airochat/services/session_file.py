"""Session files (`--session FILE`, `/save`, `/load`): a chat and its settings as versioned
JSON, written atomically with mode 0600. Loading checks the whole file -- schema, values,
template, scene, token ids -- before the live chat is touched."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from airochat.adapters.storage import atomic_write_text, read_json
from airochat.domain.config import Sampling, sampling_from
from airochat.domain.conversation import Conversation
from airochat.domain.scene import parse_scene
from airochat.domain.transcript import SavedChat, SavedTurn, SessionFileError, parse
from airochat.errors import ConfigError
from airochat.services.chat import Chat, PlainTurns, TurnPolicy
from airochat.services.roleplay import SceneTurns


def to_saved(chat: Chat) -> SavedChat:
    conv = chat.conversation
    return SavedChat(
        model=chat.model_name,
        template=chat.template.name,
        system=conv.system,
        history=conv.history,
        sampling=asdict(chat.sampling),
        turns=[
            SavedTurn(t.message, t.reply, list(t.reply_tokens), t.finish_reason, t.reply_prefix)
            for t in conv.turns
        ],
        scene=chat.scene.to_dict() if chat.scene else None,
    )


def dumps(chat: Chat) -> str:
    return json.dumps(to_saved(chat).to_json(), ensure_ascii=False, indent=1) + "\n"


def write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def save(chat: Chat, path: Path) -> None:
    write(path, dumps(chat))


def _sampling(saved: SavedChat, current: Sampling, where: str) -> Sampling:
    try:
        return sampling_from(current, saved.sampling)
    except (TypeError, ConfigError) as exc:
        raise SessionFileError(f"{where}: bad sampling settings ({exc})") from None


def restore(chat: Chat, saved: SavedChat, where: str) -> None:
    """Replace the chat with a saved one, all or nothing. Reply token ids are reused when the
    model is the same; for another model, replies are tokenized from their text."""
    template = chat.templates(saved.template)
    sampling = _sampling(saved, chat.sampling, where)
    policy: TurnPolicy = PlainTurns()
    if saved.scene is not None:
        policy = SceneTurns(parse_scene(saved.scene, where))
    conv = Conversation(template, saved.system, saved.history)
    for t in saved.turns:
        turn = conv.begin_turn(t.message, chat.engine, t.reply_prefix)
        tokens = (
            t.reply_tokens if _ids_usable(saved, t, chat) else chat.engine.tokenize_text(t.reply)
        )
        conv.finish_turn(turn, t.reply, tokens, t.finish_reason, chat.engine)
    chat.conversation, chat.sampling, chat.policy, chat.last = conv, sampling, policy, None


def _ids_usable(saved: SavedChat, turn: SavedTurn, chat: Chat) -> bool:
    """A reply's saved token ids are reused when they came from this model and every id is
    in its vocabulary; otherwise the reply is tokenized again from its text."""
    n_vocab = chat.engine.n_vocab
    return saved.model == chat.model_name and all(t < n_vocab for t in turn.reply_tokens)


def retokenized(saved: SavedChat, chat: Chat) -> list[str]:
    """A note when some replies had to be tokenized again from their text."""
    redone = sum(not _ids_usable(saved, t, chat) for t in saved.turns)
    if not redone or (saved.model != chat.model_name and not saved.turns):
        return []
    why = "another model" if saved.model != chat.model_name else "token ids outside the vocabulary"
    return [f"{redone} reply(ies) tokenized again from their text ({why})"]


def load(chat: Chat, path: Path) -> SavedChat:
    """Replace the chat with the file's; a bad file raises and changes nothing."""
    saved = parse(read_json(path), str(path))
    restore(chat, saved, str(path))
    return saved
