"""The chat: one service behind `ask`, the REPL and `bench`.

It owns the conversation and talks to an `Engine` (never a concrete one). A `TurnPolicy` decides
what a user's message becomes (a scene wraps the first one in its opening and picks a speaker);
everything else -- fitting the context, streaming, keeping the turn -- is one path for every
chat. `preview()` returns exactly what `send()` would send, without sending it. A reply is
stopped from outside through the chat's `CancelToken` (the CLI edge's signal handler cancels it);
the chat itself never touches signals. `saved()` and `restore()` are the chat as kept between
processes (services/kept_chat.py decides where and when).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from airochat.domain.cancel import CancelToken
from airochat.domain.config import Sampling, sampling_from
from airochat.domain.conversation import Conversation, Turn, tidy_message
from airochat.domain.engine import Engine
from airochat.domain.events import ChatEvent, Done, Notice, ReplyNote, TextChunk
from airochat.domain.repetition import RepetitionGuard
from airochat.domain.scene import Scene, parse_scene
from airochat.domain.templates import Template, encode, get_template, render
from airochat.domain.transcript import SavedChat, SavedTurn, SessionFileError
from airochat.errors import ConfigError, ContextOverflowError, Terminated, UsageError
from airochat.services.roleplay import turns_for
from airochat.services.turns import PlainTurns, TurnPlan, TurnPolicy


@dataclass(frozen=True)
class Preview:
    """What the model would read for a message: the text (history included), the stop strings,
    and the number of prompt tokens."""

    prompt: str
    stops: list[str]
    tokens: int
    template: str


@dataclass(frozen=True)
class ChatStats:
    """The last reply's numbers and how full the context is."""

    last: Done | None
    context_used: int
    context_size: int


class Chat:
    def __init__(
        self,
        engine: Engine,
        template: Template,
        system: str | None,
        sampling: Sampling,
        *,
        history: bool = True,
        model_name: str = "",
        templates: Callable[[str], Template] = get_template,
        policy: TurnPolicy | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.engine = engine
        # Stops a reply from outside (the CLI edge's signal handler): armed while one runs.
        self.cancel = cancel or CancelToken()
        self._scene_listeners: list[Callable[[], None]] = []
        self.model_name = model_name
        self.sampling = sampling
        self.templates = templates  # template by name: /set template, session files
        self.policy: TurnPolicy = policy or PlainTurns()
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
    def scene(self) -> Scene | None:
        return self.policy.scene

    @property
    def started(self) -> bool:
        return bool(self.conversation.turns)

    def _end_len(self) -> int:
        return len(encode(self.template.end_of_reply(), self.engine))

    def reply_budget(self) -> int:
        """Room kept for the reply, and the tokens that close it, when fitting the chat."""
        return min(self.sampling.max_tokens, self.engine.n_ctx // 2) + self._end_len()

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: str) -> Iterator[ChatEvent]:
        """Stream the reply to `message`; the turn is kept however the reply ends. If the
        message cannot fit, nothing in the chat changes."""
        return self._send(self.policy.plan(tidy_message(message), self.conversation.turns))

    def regen(self, message: str | None = None) -> Iterator[ChatEvent]:
        """Answer the last message again (or `message` in its place), same speaker."""
        last = self.conversation.turns[-1] if self.conversation.turns else None
        if last is None:
            raise UsageError("nothing to answer again yet")
        text = last.message if message is None else tidy_message(message)
        plan = self.policy.replan(last, text)
        return self._send(plan, replaces_last=True)

    def _send(self, plan: TurnPlan, replaces_last: bool = False) -> Iterator[ChatEvent]:
        conv = self.conversation
        removed = conv.undo() if replaces_last else None
        try:
            turn, notice = self._fit(plan)
        except BaseException:
            if removed is not None:
                conv.turns.append(removed)  # a refused resend leaves the chat as it was
            raise
        return self._stream(plan, turn, notice)

    def _stream(self, plan: TurnPlan, turn: Turn, notice: Notice | None) -> Iterator[ChatEvent]:
        self.policy.commit(plan)
        if notice is not None:
            yield notice
        prompt = self.conversation.prompt_tokens(turn)
        if plan.reply_prefix:  # a scene's speaker: in the prompt, and shown with the reply
            yield TextChunk(plan.reply_prefix)
        # The reply and the tokens that will close it must both fit what the prompt leaves.
        room = self.engine.n_ctx - len(prompt) - self._end_len()
        sampling = replace(self.sampling, max_tokens=max(1, min(self.sampling.max_tokens, room)))
        done: Done | None = None
        guard = RepetitionGuard()  # a reply looping on the same text is stopped
        with self.cancel.arm(self.engine.request_stop):
            for event in self.engine.generate(prompt, sampling, self.stops(plan)):
                if isinstance(event, Done):
                    event = guard.done(event)
                    self.conversation.finish_turn(
                        turn, event.text, event.tokens, event.finish_reason, self.engine
                    )
                    self.last = done = event
                else:
                    yield event
                    guard.watch(event.text, self.engine.request_stop)
        # Disarmed before Done is handed on: a caller that stops reading at Done (ask
        # --functions) must neither parse a reply cut by SIGTERM nor leave Ctrl-C stopping a
        # reply that is over. The turn is kept either way.
        if self.cancel.ending is not None:
            raise Terminated(self.cancel.ending)
        if done is not None:
            yield done
            for note in self.policy.notes(done):
                yield ReplyNote(note)

    def stops(self, plan: TurnPlan) -> list[str]:
        return list(dict.fromkeys([*self.template.stop, *plan.stops]))

    def _fit(self, plan: TurnPlan) -> tuple[Turn, Notice | None]:
        """The new turn, after dropping the oldest exchanges so that the prompt and the reply
        budget fit the context. Decided before anything is dropped: a message too big for the
        context even alone raises and leaves the chat whole."""
        conv, n_ctx = self.conversation, self.engine.n_ctx
        self._judge_size(plan.message)
        turn = conv.begin_turn(plan.message, self.engine, plan.reply_prefix)
        if not conv.history or not conv.turns:
            self._check_alone(len(turn.prompt_tokens))
            return turn, None
        sizes = [len(t.tokens()) for t in conv.turns]
        own = len(turn.prompt_tokens)
        if sum(sizes) + own + self.reply_budget() <= n_ctx:
            return turn, None
        opener = conv.begin_turn(plan.message, self.engine, plan.reply_prefix, opens=True)
        self._check_alone(len(opener.prompt_tokens))
        # Shifting the cache makes a drop cheap: drop as little as needed. Without it, what
        # stays is read again, so free a quarter of the context at once to do that rarely.
        shifts = conv.turns[0].head is not None and self.engine.can_shift
        count = self._how_many_to_drop(sizes, own, 0 if shifts else n_ctx // 4)
        notice = self._drop(count, quarter=not shifts)
        return conv.begin_turn(plan.message, self.engine, plan.reply_prefix), notice

    def _how_many_to_drop(self, sizes: list[int], own: int, extra: int) -> int:
        """The fewest oldest exchanges to drop so that the rest, the new message, the reply
        budget and `extra` free tokens fit (the next exchange then opens the chat)."""
        conv, budget, n_ctx = self.conversation, self.reply_budget(), self.engine.n_ctx
        for k in range(1, len(sizes)):
            first = conv.turns[k]
            opening = len(conv.opening_tokens(first, self.engine))
            total = opening - len(first.prompt_tokens) + sum(sizes[k:]) + own
            if total + budget + extra <= n_ctx:
                return k
        return len(sizes)

    def _drop(self, count: int, quarter: bool) -> Notice:
        """Drop the oldest `count` exchanges; keep the KV cache of the rest by shifting it."""
        conv = self.conversation
        old_head = conv.turns[0].head
        cut = sum(len(t.tokens()) for t in conv.turns[:count])
        conv.drop_oldest(count, self.engine)
        said = f"context full: dropped the {count} oldest exchange(s)"
        said += ", freeing a quarter of the context" if quarter else ""
        if not conv.turns:
            return Notice(said)
        kept = sum(len(t.tokens()) for t in conv.turns) - len(conv.turns[0].head or [])
        if old_head is None or conv.turns[0].head != old_head:
            why = "this template's first turn is not the later turns' shape"
        elif not self.engine.can_shift:
            why = "this model cannot shift its cache"
        elif self.engine.drop_cached(len(old_head), cut):
            return Notice(f"{said}; the cache of the {kept} tokens that stay was kept")
        else:
            why = "the cache did not hold them"
        return Notice(
            f"{said} (a quarter of the context); the {kept} tokens that stay are read again: {why}"
        )

    def _judge_size(self, message: str) -> None:
        """Refuse a message that cannot fit from its size alone: no token stands for more
        than `max_token_bytes` bytes, so that many times the context is a hard ceiling. (A
        huge text would otherwise be tokenized first, which takes minutes.)"""
        size = len(message.encode("utf-8"))
        if size <= self.engine.n_ctx:
            return
        if size // self.engine.max_token_bytes >= self.engine.n_ctx:
            raise ContextOverflowError(
                f"this message is {size / 1024:.0f} KiB, at least "
                f"{size // self.engine.max_token_bytes} tokens; the context holds "
                f"{self.engine.n_ctx} (raise --ctx or send less); the chat is unchanged"
            )

    def _check_alone(self, size: int) -> None:
        if size + self._end_len() + 1 > self.engine.n_ctx:  # no room for a one-token reply
            raise ContextOverflowError(
                f"this message is {size} tokens with the system prompt; the context holds "
                f"{self.engine.n_ctx} (raise --ctx or send less); the chat is unchanged"
            )

    # -- seeing inside -------------------------------------------------------------------------

    def preview(self, message: str) -> Preview:
        """Exactly what `send(message)` would send now, without sending it."""
        plan = self.policy.plan(tidy_message(message), self.conversation.turns)
        conv = self.conversation
        turn = conv.begin_turn(plan.message, self.engine, plan.reply_prefix)
        before = conv.render() if conv.history else ""
        return Preview(
            prompt=before + render(turn.prompt),
            stops=self.stops(plan),
            tokens=len(conv.prompt_tokens(turn)),
            template=self.template.name,
        )

    def prompt_text(self) -> str:
        """What the model saw for the latest turn, its reply included."""
        return self.conversation.render()

    def stats(self) -> ChatStats:
        return ChatStats(self.last, len(self.conversation.tokens()), self.engine.n_ctx)

    # -- changing the chat ---------------------------------------------------------------------

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

    def set_template(self, name: str) -> None:
        self.conversation.template = self.templates(name)
        self.conversation.rebuild(self.engine)

    def set_history(self, on: bool) -> None:
        self.conversation.history = on
        self.conversation.rebuild(self.engine)

    def add_to_last_reply(self, text: str) -> None:
        """Text the model is taken to have written at the end of its last reply (a scene's
        `/as NAME line`), tokenized as a continuation so the ids stay what the text says."""
        if not self.conversation.turns:
            raise UsageError("the chat has not started yet")
        ids = self.engine.tokenize_text(text)
        if ids and self.engine.piece(ids[0]) == b" " and not text.startswith(" "):
            ids = ids[1:]  # SentencePiece's added leading space
        self.conversation.extend_last_reply(text, ids)

    # -- kept and restored ---------------------------------------------------------------------

    def saved(self) -> SavedChat:
        """The chat and its settings as kept between processes."""
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
            scene=self.scene.to_dict() if self.scene else None,
        )

    def restore(self, saved: SavedChat, where: str) -> list[str]:
        """Become the saved chat, all or nothing: a bad value raises before anything changes.
        Reply token ids are reused when they came from this model and fit its vocabulary;
        otherwise replies are tokenized from their text (said in the notes returned)."""
        template = self.templates(saved.template)
        try:
            sampling = sampling_from(self.sampling, saved.sampling)
        except (TypeError, ConfigError) as exc:
            raise SessionFileError(f"{where}: bad sampling settings ({exc})") from None
        scene = parse_scene(saved.scene, where) if saved.scene is not None else None
        conv = Conversation(template, saved.system, saved.history)
        redone = 0
        for t in saved.turns:
            turn = conv.begin_turn(t.message, self.engine, t.reply_prefix)
            usable = saved.model == self.model_name and all(
                i < self.engine.n_vocab for i in t.reply_tokens
            )
            redone += not usable
            tokens = t.reply_tokens if usable else self.engine.tokenize_text(t.reply)
            conv.finish_turn(turn, t.reply, tokens, t.finish_reason, self.engine)
        changed = (scene.to_dict() if scene else None) != (
            self.scene.to_dict() if self.scene else None
        )
        self.conversation, self.sampling, self.last = conv, sampling, None
        self.policy = turns_for(scene)
        if changed:
            for listener in self._scene_listeners:
                listener()
        if not redone:
            return []
        why = (
            "another model"
            if saved.model != self.model_name
            else "token ids outside the vocabulary"
        )
        return [f"{redone} reply(ies) tokenized again from their text ({why})"]

    def on_scene_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a restore brings, replaces or takes away the roleplay scene
        (the REPL then switches to the command set of the chat in force)."""
        self._scene_listeners.append(listener)
