"""How a user's message becomes a turn: the plan sent for it, and the policy that makes plans
(plain, or a roleplay scene's in services/roleplay.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from airochat.domain.conversation import Turn
from airochat.domain.events import Done
from airochat.domain.scene import Scene


@dataclass(frozen=True)
class TurnPlan:
    """What is sent for one user message: its text, extra stop strings, the reply's opening."""

    message: str
    stops: tuple[str, ...] = ()
    reply_prefix: str = ""


class TurnPolicy(Protocol):
    """How user messages become turns. The plain policy sends them as typed; a scene's adds
    its opening, its speaker and the stop strings that keep the model out of the user's lines."""

    scene: Scene | None

    def plan(self, message: str, turns: Sequence[Turn]) -> TurnPlan: ...

    def replan(self, turn: Turn, message: str) -> TurnPlan:
        """The plan for sending `turn` again (regen, edit): same speaker, new text."""
        ...

    def commit(self, plan: TurnPlan) -> None:
        """The plan was sent (a scene moves on to the next speaker)."""
        ...

    def notes(self, done: Done) -> list[str]: ...


class PlainTurns:
    scene: Scene | None = None

    def plan(self, message: str, turns: Sequence[Turn]) -> TurnPlan:
        return TurnPlan(message)

    def replan(self, turn: Turn, message: str) -> TurnPlan:
        return TurnPlan(message, reply_prefix=turn.reply_prefix)

    def commit(self, plan: TurnPlan) -> None:
        pass

    def notes(self, done: Done) -> list[str]:
        return []
