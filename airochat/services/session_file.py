"""Session files (`--session FILE`, `/save`, `/load`): a chat and its settings as versioned
JSON, written atomically with mode 0600. Loading checks the whole file -- schema, values,
template, scene, token ids -- before the live chat is touched."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from airochat.adapters.storage import read_json, write_json
from airochat.domain.config import Sampling
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


def save(chat: Chat, path: Path) -> None:
    write_json(path, to_saved(chat).to_json())


def _sampling(saved: SavedChat, current: Sampling, where: str) -> Sampling:
    known = {k: v for k, v in saved.sampling.items() if k in asdict(current)}
    try:
        sampling = replace(current, **known)
        sampling.validate()
    except (TypeError, ConfigError) as exc:
        raise SessionFileError(f"{where}: bad sampling settings ({exc})") from None
    return sampling


def restore(chat: Chat, saved: SavedChat, where: str) -> None:
    """Replace the chat with a saved one, all or nothing. Reply token ids are reused when the
    model is the same; for another model, replies are tokenized from their text."""
    template = chat.templates(saved.template)
    sampling = _sampling(saved, chat.sampling, where)
    policy: TurnPolicy = PlainTurns()
    if saved.scene is not None:
        policy = SceneTurns(parse_scene(saved.scene, where))
    conv = Conversation(template, saved.system, saved.history)
    same_model = saved.model == chat.model_name
    for t in saved.turns:
        turn = conv.begin_turn(t.message, chat.engine, t.reply_prefix)
        tokens = t.reply_tokens if same_model else chat.engine.tokenize_text(t.reply)
        conv.finish_turn(turn, t.reply, tokens, t.finish_reason, chat.engine)
    chat.conversation, chat.sampling, chat.policy, chat.last = conv, sampling, policy, None


def load(chat: Chat, path: Path) -> SavedChat:
    """Replace the chat with the file's; a bad file raises and changes nothing."""
    saved = parse(read_json(path), str(path))
    restore(chat, saved, str(path))
    return saved
