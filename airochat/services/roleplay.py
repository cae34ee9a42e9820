"""A roleplay scene on top of the chat session: the opening turn, who speaks next, keeping the
model out of the user's lines, and notes about what was cut or looks off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airochat.adapters.engine import Done
from airochat.domain.scene import Scene, parse_scene, render_opening, stop_strings, unknown_speakers
from airochat.errors import UsageError
from airochat.services.chat import ChatSession, Event


@dataclass(frozen=True)
class SceneNote:
    """Something about a reply worth a dim line: lines cut, unknown speakers."""

    text: str


class RoleplaySession:
    def __init__(self, chat: ChatSession, scene: Scene) -> None:
        self.chat = chat
        self.scene = scene
        self.next_speaker: str | None = None

    # -- who speaks --------------------------------------------------------------------------

    def _last_speaker(self) -> str | None:
        for turn in reversed(self.chat.conversation.turns):
            if turn.reply_prefix:
                return turn.reply_prefix.rstrip(":")
        return None

    def _speaker(self) -> str | None:
        """Single mode: the character /next named, else the one after the last speaker."""
        if self.scene.mode != "single":
            return None
        if self.next_speaker:
            name, self.next_speaker = self.next_speaker, None
            return name
        names = self.scene.names
        last = self._last_speaker()
        return names[(names.index(last) + 1) % len(names)] if last in names else names[0]

    def set_next(self, name: str) -> str:
        match = [n for n in self.scene.names if n.lower() == name.strip().lower()]
        if not match:
            raise UsageError(f"no character {name!r} in this scene ({', '.join(self.scene.names)})")
        self.next_speaker = match[0]
        return match[0]

    # -- turns -----------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return bool(self.chat.conversation.turns)

    def opening_message(self, extra: str = "") -> str:
        text = render_opening(self.scene)
        return f"{text}\n\n{extra.strip()}" if extra.strip() else text

    def start(self, extra: str = "") -> Iterator[Event | SceneNote]:
        """The first turn: the cast, the rules, the setting and the opening instruction."""
        yield from self.say(self.opening_message(extra))

    def say(self, message: str) -> Iterator[Event | SceneNote]:
        """A user turn (actions in asterisks pass through as typed)."""
        if not self.started and message != self.opening_message():
            message = self.opening_message(message)
        speaker = self._speaker()
        prefix = f"{speaker}:" if speaker else ""
        stops = stop_strings(self.scene, speaker)[1:]  # USER: is the template's own stop
        done: Done | None = None
        for event in self.chat.send(message, stop=stops, reply_prefix=prefix):
            if isinstance(event, Done):
                done = event
            yield event
        if done is not None:
            yield from self._notes(done)

    def _notes(self, done: Done) -> Iterator[SceneNote]:
        user = self.scene.user
        if done.stopped_by and user in done.stopped_by:
            yield SceneNote(f"cut where the model began to write for {user}")
        elif done.stopped_by and done.stopped_by.startswith("\n") and self.scene.mode == "single":
            yield SceneNote(f"cut where another character ({done.stopped_by.strip()[:-1]}) began")
        strangers = unknown_speakers(self.scene, done.text)
        if strangers:
            yield SceneNote(f"speakers not in the cast: {', '.join(strangers)}")

    def me(self, action: str) -> Iterator[Event | SceneNote]:
        """The user's action, in asterisks as the cards write actions."""
        text = action.strip()
        if not text:
            raise UsageError("usage: /me ACTION")
        yield from self.say(text if text.startswith("*") else f"*{text}*")

    def insert_line(self, name: str, text: str) -> str:
        """Put a line in a character's mouth: added to the last reply, as the model's own."""
        match = [n for n in self.scene.names if n.lower() == name.strip().lower()]
        if not match:
            raise UsageError(f"no character {name!r} in this scene ({', '.join(self.scene.names)})")
        turns = self.chat.conversation.turns
        if not turns:
            raise UsageError("the scene has not started yet")
        line = f"\n{match[0]}: {text.strip()}"
        last = turns[-1]
        last.reply += line
        ids = self.chat.engine.tokenize_text(line)
        if ids and self.chat.engine.piece(ids[0]) == b" ":  # SentencePiece's leading space
            ids = ids[1:]
        last.reply_tokens = [*last.reply_tokens, *ids]
        return line.strip()

    def cast(self) -> str:
        rows = [f"{self.scene.title or 'Scene'} ({self.scene.mode})"]
        rows += [f"  {c.name}: {c.description}" for c in self.scene.characters]
        persona = f" ({self.scene.persona})" if self.scene.persona else ""
        rows.append(f"  you: {self.scene.user}{persona}")
        return "\n".join(rows)

    def saved_extra(self) -> dict[str, Any]:
        return {"scene": self.scene.to_dict()}

    @classmethod
    def from_saved(cls, chat: ChatSession, extra: dict[str, Any]) -> RoleplaySession | None:
        if not isinstance(extra.get("scene"), dict):
            return None
        return cls(chat, parse_scene(extra["scene"], "session file"))
