"""The chat session: one service behind `ask`, the REPL and `bench`.

It owns the conversation and the engine and knows nothing of terminals: callers iterate the
events of `send()` and render them however they like.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from airochat.adapters.engine import Done, Event, LlamaEngine, SamplingParams
from airochat.domain.config import Sampling
from airochat.domain.conversation import Conversation
from airochat.domain.templates import Template, encode


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

    @property
    def template(self) -> Template:
        return self.conversation.template

    @property
    def stop(self) -> list[str]:
        return list(self.template.stop)

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

    def preview(self, message: str) -> str:
        """The exact prompt text the model would read for `message`, without generating."""
        turn = self.conversation.begin_turn(message, self.engine)
        before = self.conversation.render() if self.conversation.history else ""
        return before + turn.text()

    def send(self, message: str) -> Iterator[Event]:
        """Stream the reply to `message`; the turn is kept however the reply ends."""
        turn = self.conversation.begin_turn(message, self.engine)
        prompt = self.conversation.prompt_tokens(turn)
        with _sigint_stops(self.engine):
            for event in self.engine.generate(prompt, self.params(), self.stop):
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

    def reset(self) -> None:
        self.conversation.reset()
        self.last = None

    def set_sampling(self, **changes: object) -> None:
        self.sampling = replace(self.sampling, **changes)  # type: ignore[arg-type]
        self.sampling.validate()

    def end_tokens(self) -> list[int]:
        return encode(self.template.end_of_reply(), self.engine)


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
