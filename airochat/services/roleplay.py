"""Roleplay: a scene as a turn policy of the chat (the opening turn, who speaks next, the stop
strings that keep the model out of the user's lines, notes about what was cut), and a scene
composed from character cards (`airochat scene import`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airochat.adapters.cards import card_character
from airochat.domain.conversation import Turn
from airochat.domain.events import Done
from airochat.domain.scene import (
    Scene,
    load_scene,
    parse_scene,
    render_opening,
    stop_strings,
    unknown_speakers,
)
from airochat.errors import UsageError
from airochat.services.turns import PlainTurns, TurnPlan, TurnPolicy


def load_scene_file(path: Path) -> Scene:
    """A scene file, its characters' `card:` paths read relative to the file."""
    return load_scene(path, lambda card: card_character(path.parent / str(card)))


def turns_for(scene: Scene | None) -> TurnPolicy:
    """The turn policy of a chat with this scene (or none)."""
    return SceneTurns(scene) if scene is not None else PlainTurns()


def scene_from_cards(cards: Sequence[Path], user: str) -> dict[str, Any]:
    """A scene file's content from character cards: the cast together, the first card's
    scenario as the setting, unused card fields kept under extensions. It loads as a scene."""
    chars = [card_character(c) for c in cards]
    names = [c["name"] for c in chars]
    together = (
        " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" and {names[-1]}"
    )
    scene = {
        "title": f"{together}",
        "user": {"name": user},
        "characters": [{k: v for k, v in c.items() if v} for c in chars],
        "rules": ["surround character actions with asterisks"],
        "setting": next((c["scenario"] for c in chars if c.get("scenario")), ""),
        "opening": f"Generate a single interaction between {together} to start, "
        "with one sentence each."
        if len(names) > 1
        else f"{names[0]} starts the conversation.",
        "mode": "ensemble",
    }
    parse_scene(scene, "the imported scene")  # what we write must load
    return scene


class SceneTurns:
    """The `TurnPolicy` of a scene."""

    def __init__(self, scene: Scene) -> None:
        self.scene: Scene | None = scene
        self.cast = scene
        self.next_speaker: str | None = None

    # -- who speaks ----------------------------------------------------------------------------

    def character(self, name: str) -> str:
        """A cast member by name, case-insensitively."""
        match = [n for n in self.cast.names if n.lower() == name.strip().lower()]
        if not name.strip() or not match:
            cast = ", ".join(self.cast.names)
            raise UsageError(f"name a character: one of {cast}")
        return match[0]

    def set_next(self, name: str) -> str:
        if self.cast.mode != "single":
            raise UsageError("/next is for single-speaker scenes (mode: single)")
        self.next_speaker = self.character(name)
        return self.next_speaker

    def _speaker(self, turns: Sequence[Turn]) -> str | None:
        """Single mode: the character /next named, else the one after the last speaker."""
        if self.cast.mode != "single":
            return None
        if self.next_speaker:
            return self.next_speaker
        names = self.cast.names
        last = next((t.reply_prefix.rstrip(":") for t in reversed(turns) if t.reply_prefix), None)
        return names[(names.index(last) + 1) % len(names)] if last in names else names[0]

    # -- the policy ------------------------------------------------------------------------------

    def opening(self, extra: str = "") -> str:
        text = render_opening(self.cast)
        return f"{text}\n\n{extra.strip()}" if extra.strip() else text

    def _plan_for(self, message: str, speaker: str | None) -> TurnPlan:
        stops = stop_strings(self.cast, speaker)[1:]  # USER: is the template's own stop
        return TurnPlan(message, tuple(stops), f"{speaker}:" if speaker else "")

    def plan(self, message: str, turns: Sequence[Turn]) -> TurnPlan:
        text = message if turns else self.opening(message)
        return self._plan_for(text, self._speaker(turns))

    def replan(self, turn: Turn, message: str) -> TurnPlan:
        speaker = turn.reply_prefix.rstrip(":") or None
        return self._plan_for(message, speaker)

    def commit(self, plan: TurnPlan) -> None:
        self.next_speaker = None

    def notes(self, done: Done) -> list[str]:
        user, notes = self.cast.user, []
        if done.stopped_by and user in done.stopped_by:
            notes.append(f"cut where the model began to write for {user}")
        elif done.stopped_by.startswith("\n") and self.cast.mode == "single":
            notes.append(f"cut where another character ({done.stopped_by.strip()[:-1]}) began")
        strangers = unknown_speakers(self.cast, done.text)
        if strangers:
            notes.append(f"speakers not in the cast: {', '.join(strangers)}")
        return notes

    def describe(self) -> str:
        """The cast, for /scene and the REPL's start."""
        scene = self.cast
        rows = [f"{scene.title or 'Scene'} ({scene.mode})"]
        rows += [f"  {c.name}: {c.description}" for c in scene.characters]
        persona = f" ({scene.persona})" if scene.persona else ""
        rows.append(f"  you: {scene.user}{persona}")
        return "\n".join(rows)
