"""The chat session: one service behind `ask`, the REPL and `bench`.

It owns the conversation and the engine and knows nothing of terminals: callers iterate the
events of `send()` and render them however they like.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

from airochat.adapters.engine import Done, LlamaEngine, SamplingParams, TextChunk
from airochat.domain.config import Sampling
from airochat.domain.conversation import Conversation, Turn
from airochat.domain.templates import Template
from airochat.domain.transcript import SavedChat
from airochat.errors import ContextOverflowError


@dataclass(frozen=True)
class Notice:
    """Something the user should know about this turn (e.g. old exchanges were dropped)."""

    text: str


Event = TextChunk | Done | Notice


@dataclass
class ChatStats:
    """The last reply's numbers and how full the context is."""

    last: Done | None
    context_used: int
    context_size: int


class ChatSession:
    def __init__(
        self,
        engine: LlamaEngine,
        template: Template,
        system: str | None,
        sampling: Sampling,
        history: bool = True,
        model_name: str = "",
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.sampling = sampling
        self.conversation = Conversation(
            template=template,
            system=template.default_system if system is None else system,
            history=history,
        )
        self.last: Done | None = None
        self.extra_stop: list[str] = []

    @property
    def template(self) -> Template:
        return self.conversation.template

    @property
    def stop(self) -> list[str]:
        return [*self.template.stop, *self.extra_stop]

    def params(self, **overrides: Any) -> SamplingParams:
        s = replace(self.sampling, **overrides)
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            min_p=s.min_p,
            repeat_penalty=s.repeat_penalty,
            max_tokens=s.max_tokens,
            seed=s.seed,
        )

    def reply_budget(self) -> int:
        """Room kept for the reply when fitting the chat into the context."""
        return min(self.sampling.max_tokens, self.engine.n_ctx // 2)

    def _fit(self, message: str, prefix: str = "") -> tuple[Turn, int]:
        """The new turn, after dropping the oldest whole exchanges until prompt + reply budget
        fit the context. Never drops the system prompt or the current message."""
        conv = self.conversation
        turn = conv.begin_turn(message, self.engine, prefix)
        dropped = 0
        while (
            conv.history
            and conv.turns
            and (len(conv.prompt_tokens(turn)) + self.reply_budget() > self.engine.n_ctx)
        ):
            conv.drop_oldest(self.engine)
            dropped += 1
            turn = conv.begin_turn(message, self.engine, prefix)
        size = len(conv.prompt_tokens(turn))
        if size >= self.engine.n_ctx:
            raise ContextOverflowError(
                f"this message is {size} tokens with the system prompt; the context holds "
                f"{self.engine.n_ctx} (raise --ctx or send less)"
            )
        return turn, dropped

    def send(
        self, message: str, stop: list[str] | None = None, reply_prefix: str = ""
    ) -> Iterator[Event]:
        """Stream the reply to `message`; the turn is kept however the reply ends. `stop`
        replaces the extra stop strings for this turn; `reply_prefix` starts the reply."""
        turn, dropped = self._fit(message, reply_prefix)
        if dropped:
            yield Notice(f"context full: dropped the {dropped} oldest exchange(s) to continue")
        prompt = self.conversation.prompt_tokens(turn)
        stops = [*self.template.stop, *(self.extra_stop if stop is None else stop)]
        with _sigint_stops(self.engine):
            for event in self.engine.generate(prompt, self.params(), stops):
                if isinstance(event, Done):
                    self.conversation.finish_turn(
                        turn, event.text, event.tokens, event.finish_reason, self.engine
                    )
                    self.last = event
                yield event

    def prompt_text(self) -> str:
        """What the model saw for the latest turn, its reply included."""
        return self.conversation.render()

    def prompt_tokens(self, message: str) -> list[int]:
        turn = self.conversation.begin_turn(message, self.engine)
        return self.conversation.prompt_tokens(turn)

    def stats(self) -> ChatStats:
        return ChatStats(self.last, len(self.conversation.tokens()), self.engine.n_ctx)

    # -- changing the chat -----------------------------------------------------------------------

    def reset(self) -> None:
        self.conversation.reset()
        self.last = None

    def undo(self) -> Turn | None:
        return self.conversation.undo()

    def set_sampling(self, **changes: Any) -> None:
        updated = replace(self.sampling, **changes)
        updated.validate()
        self.sampling = updated

    def set_system(self, system: str) -> None:
        self.conversation.system = system
        self.conversation.rebuild(self.engine)

    def set_template(self, template: Template) -> None:
        self.conversation.template = template
        self.conversation.rebuild(self.engine)

    def set_history(self, on: bool) -> None:
        self.conversation.history = on
        self.conversation.rebuild(self.engine)

    # -- saving ------------------------------------------------------------------------------------

    def to_saved(self, extra: dict[str, Any] | None = None) -> SavedChat:
        from airochat.domain.transcript import SavedTurn

        conv = self.conversation
        return SavedChat(
            model=self.model_name,
            template=self.template.name,
            system=conv.system,
            history=conv.history,
            sampling=asdict(self.sampling),
            turns=[
                SavedTurn(t.message, t.reply, list(t.reply_tokens), t.finish_reason, t.reply_prefix)
                for t in conv.turns
            ],
            extra=extra or {},
        )

    def restore(self, saved: SavedChat, template: Template) -> None:
        """Replace the chat with a saved one. Reply token ids are reused when the model is the
        same; for another model, replies are tokenized from their text."""
        self.conversation = Conversation(template, saved.system, saved.history)
        same_model = saved.model == self.model_name
        for t in saved.turns:
            turn = self.conversation.begin_turn(t.message, self.engine, t.reply_prefix)
            tokens = t.reply_tokens if same_model else self.engine.tokenize_text(t.reply)
            self.conversation.finish_turn(turn, t.reply, tokens, t.finish_reason, self.engine)
        known = {k: v for k, v in saved.sampling.items() if k in asdict(self.sampling)}
        self.set_sampling(**known)
        self.last = None


@contextmanager
def _sigint_stops(engine: LlamaEngine) -> Iterator[None]:
    """While a reply is generated, Ctrl-C asks the engine to stop instead of raising: the abort
    callback then ends even a long prompt read inside llama.cpp, and the turn is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda _sig, _frame: engine.request_stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
