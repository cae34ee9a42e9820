"""The REPL's extra commands in a roleplay scene: /as, /me, /scene, /next."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from airochat.domain.templates import Template
from airochat.errors import UsageError
from airochat.services.chat import ChatSession
from airochat.services.commands import Answer, ChatIO, Commands
from airochat.services.roleplay import RoleplaySession


class SceneCommands(Commands):
    def __init__(
        self,
        session: ChatSession,
        io: ChatIO,
        answer: Answer,
        template_by_name: Callable[[str], Template],
        session_path: Path | None,
        roleplay: RoleplaySession,
        run_turn: Callable[[Iterator[Any]], None],
    ) -> None:
        super().__init__(session, io, answer, template_by_name, session_path)
        self.roleplay = roleplay
        self.run_turn = run_turn

    def cmd_as(self, arg: str) -> bool:
        """Put a line in a character's mouth: /as NAME text (quotes in the text are kept)."""
        names = sorted(self.roleplay.scene.names, key=len, reverse=True)
        low = arg.lower()
        name = next((n for n in names if low.startswith(n.lower() + " ")), None)
        if name is None:
            cast = ", ".join(self.roleplay.scene.names)
            raise UsageError(f"usage: /as NAME text, NAME one of: {cast}")
        line = self.roleplay.insert_line(name, arg[len(name) :].strip())
        self.io.show(line)
        return False

    def cmd_me(self, arg: str) -> bool:
        """Act as yourself: /me waves (sent as *waves*)."""
        self.run_turn(self.roleplay.me(arg))
        return False

    def cmd_scene(self, _arg: str) -> bool:
        """Show the cast and the mode."""
        self.io.show(self.roleplay.cast())
        return False

    def cmd_next(self, arg: str) -> bool:
        """Single mode: who answers next: /next NAME (default: round robin)."""
        if self.roleplay.scene.mode != "single":
            raise UsageError("/next is for single-speaker scenes (mode: single)")
        self.io.notice(f"{self.roleplay.set_next(arg)} answers next")
        return False

    def cmd_regen(self, _arg: str) -> bool:
        """Another take on the last reply."""
        turn = self.session.undo()
        if turn is None:
            raise UsageError("nothing to regenerate yet")
        if turn.reply_prefix:
            self.roleplay.next_speaker = turn.reply_prefix.rstrip(":")
        self.run_turn(self.roleplay.say(turn.message))
        return False

    def cmd_load(self, arg: str) -> bool:
        """Load a saved chat (and its scene): /load FILE."""
        from airochat.services.sessions import load_session

        if not arg:
            raise UsageError("usage: /load FILE")
        saved = load_session(self.session, Path(arg).expanduser(), self.template_by_name)
        restored = RoleplaySession.from_saved(self.session, saved.extra)
        if restored is not None:
            self.roleplay.scene = restored.scene
        self.io.notice(f"Loaded {len(saved.turns)} turn(s) from {arg}")
        return False

    def saved_extra(self) -> dict[str, Any] | None:
        return self.roleplay.saved_extra()
