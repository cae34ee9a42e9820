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
from airochat.domain.engine import Dropped, Engine
from airochat.domain.events import ChatEvent, Done, Notice, ReplyNote, TextChunk
from airochat.domain.repetition import RepetitionGuard
from airochat.domain.scene import Scene, parse_scene
from airochat.domain.templates import Template, encode, get_template, render
from airochat.domain.transcript import SavedChat, SavedTurn, SessionFileError
from airochat.domain.unicode_text import has_lone_surrogate, valid_unicode
from airochat.errors import (
    AirochatError,
    ConfigError,
    ContextOverflowError,
    Terminated,
    UsageError,
)
from airochat.services.roleplay import turns_for
from airochat.services.turns import PlainTurns, TurnPlan, TurnPolicy


def _check_text(message: str) -> str:
    """A message that cannot be written as UTF-8 (bytes ff fe pasted at the prompt arrive as
    lone surrogates) is refused before the chat changes."""
    if has_lone_surrogate(message):
        raise UsageError(
            "this message has bytes that are not UTF-8 text (pasted binary?); the chat is unchanged"
        )
    return message


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
        return bool(self.conversation.turns or self.conversation.earlier)

    def _end_len(self) -> int:
        return len(encode(self.template.end_of_reply(), self.engine))

    def reply_budget(self) -> int:
        """Room kept for the reply, and the tokens that close it, when fitting the chat."""
        return min(self.sampling.max_tokens, self.engine.n_ctx // 2) + self._end_len()

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: str) -> Iterator[ChatEvent]:
        """Stream the reply to `message`; the turn is kept however the reply ends. If the
        message cannot fit, nothing in the chat changes."""
        _check_text(message)
        return self._send(self.policy.plan(tidy_message(message), self.conversation.turns))

    def regen(self, message: str | None = None) -> Iterator[ChatEvent]:
        """Answer the last message again (or `message` in its place), same speaker."""
        last = self.conversation.turns[-1] if self.conversation.turns else None
        if last is None:
            raise UsageError("nothing to answer again yet")
        text = last.message if message is None else tidy_message(_check_text(message))
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
                    event = guard.done(replace(event, text=valid_unicode(event.text)))
                    tokens = self._reply_ids(event.text, event.tokens)
                    self.conversation.finish_turn(
                        turn, event.text, tokens, event.finish_reason, self.engine
                    )
                    self.last = done = event
                elif isinstance(event, TextChunk):
                    yield replace(event, text=valid_unicode(event.text))
                    guard.watch(event.text, self.engine.request_stop)
                else:
                    yield event
        # Disarmed before Done is handed on: a caller that stops reading at Done (ask
        # --functions) must neither parse a reply cut by SIGTERM nor leave Ctrl-C stopping a
        # reply that is over. The turn is kept either way.
        if self.cancel.ending is not None:
            raise Terminated(self.cancel.ending)
        if done is not None:
            yield done
            for note in self.policy.notes(done):
                yield ReplyNote(note)

    def _usable_ids(self, ids: object) -> bool:
        """Token ids this model can read back: ints inside its vocabulary."""
        n_vocab = self.engine.n_vocab
        return isinstance(ids, list) and all(type(i) is int and 0 <= i < n_vocab for i in ids)

    def _reply_ids(self, text: str, ids: list[int]) -> list[int]:
        """A reply's ids as kept: the engine's when they are token ids of this model (a
        server may send -1 or worse), else the text's own tokens; none when even that fails
        (a resume then tokenizes the text)."""
        if self._usable_ids(ids):
            return list(ids)
        try:
            return self.engine.tokenize_text(text) if text else []
        except AirochatError:
            return []

    def stops(self, plan: TurnPlan) -> list[str]:
        return list(dict.fromkeys([*self.template.stop, *plan.stops]))

    def _fit(self, plan: TurnPlan) -> tuple[Turn, Notice | None]:
        """The new turn, after sliding the oldest exchanges out of the model's window so that
        the prompt and the reply budget fit the context (the chat keeps them). Decided before
        anything moves: a message too big for the context even alone raises and leaves the
        chat whole."""
        conv, n_ctx = self.conversation, self.engine.n_ctx
        self._judge_size(plan.message)
        turn = conv.begin_turn(plan.message, self.engine, plan.reply_prefix)
        if not conv.history or not conv.turns:
            self._check_alone(len(turn.prompt_tokens))
            return turn, None
        sizes = [t.size() for t in conv.turns]
        own = len(turn.prompt_tokens)
        if sum(sizes) + own + self.reply_budget() <= n_ctx:
            return turn, None
        opener = conv.begin_turn(plan.message, self.engine, plan.reply_prefix, opens=True)
        self._check_alone(len(opener.prompt_tokens))
        # Shifting the cache makes a drop cheap: drop as little as needed. Without it, what
        # stays is read again, so free a quarter of the context at once to do that rarely.
        shifts = conv.turns[0].head is not None and self.engine.capabilities.can_shift
        extra = 0 if shifts else n_ctx // 4
        count = self._how_many_to_drop(sizes, own, extra, len(opener.prompt_tokens) - own)
        notice = self._drop(count, quarter=not shifts)
        return conv.begin_turn(plan.message, self.engine, plan.reply_prefix), notice

    def _how_many_to_drop(self, sizes: list[int], own: int, extra: int, head: int) -> int:
        """The fewest oldest exchanges to drop so that the rest, the new message, the reply
        budget and `extra` free tokens fit (the next exchange then opens the chat).

        Linear: the suffix sums say where the cut must fall if opening a turn costs `head`
        tokens more than the turn has (what it costs the new message); only the turn chosen
        is tokenized as an opening to check, the next one tried if it does not fit."""
        conv, budget, n_ctx = self.conversation, self.reply_budget(), self.engine.n_ctx
        room = n_ctx - budget - extra - own
        after = [0] * (len(sizes) + 1)  # after[k]: the tokens of turns k and later
        for i in range(len(sizes) - 1, -1, -1):
            after[i] = after[i + 1] + sizes[i]
        k = next((k for k in range(1, len(sizes)) if after[k] + head <= room), len(sizes))
        while k < len(sizes):
            first = conv.turns[k]
            opening = len(conv.opening_tokens(first, self.engine))
            if opening - len(first.prompt_tokens) + after[k] <= room:
                return k
            k += 1
        return len(sizes)

    def _drop(self, count: int, quarter: bool) -> Notice:
        """Drop the oldest `count` exchanges; keep the KV cache of the rest by shifting it."""
        conv = self.conversation
        old_head = conv.turns[0].head
        cut = sum(t.size() for t in conv.turns[:count])
        conv.drop_oldest(count, self.engine)
        said = f"context full: dropped the {count} oldest exchange(s)"
        said += ", freeing a quarter of the context" if quarter else ""
        if not conv.turns:
            return Notice(said)
        kept = sum(t.size() for t in conv.turns) - len(conv.turns[0].head or [])
        if old_head is None or conv.turns[0].head != old_head:
            why = "this template's first turn is not the later turns' shape"
        elif not self.engine.capabilities.can_shift:
            why = "this model cannot shift its cache"
        elif (dropped := self.engine.drop_cached(len(old_head), cut)) is Dropped.SHIFTED:
            return Notice(f"{said}; the cache of the {kept} tokens that stay was kept")
        elif dropped is Dropped.ON_NEXT_READ:
            return Notice(f"{said}; the server is asked to keep the cache of the {kept} that stay")
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
        """The chat and its settings as kept between processes: every exchange, those slid
        out of the model's window too (`window` says where the model's part starts)."""
        conv = self.conversation
        exact = self.engine.capabilities.exact_token_ids

        def ids(tokens: list[int]) -> list[int]:  # stand-in ids are not kept: the text is
            return list(tokens) if exact else []

        return SavedChat(
            model=self.model_name,
            template=self.template.name,
            system=conv.system,
            history=conv.history,
            sampling=asdict(self.sampling),
            turns=[
                SavedTurn(t.message, t.reply, ids(t.reply_tokens), t.finish_reason, t.reply_prefix)
                for t in conv.all_turns()
            ],
            scene=self.scene.to_dict() if self.scene else None,
            window=len(conv.earlier),
        )

    def restore(self, saved: SavedChat, where: str) -> list[str]:
        """Become the saved chat, all or nothing: a bad value raises before anything changes
        (and so does an interrupt). Reply token ids are reused when they came from this model
        and fit its vocabulary; otherwise replies are tokenized from their text (said in the
        notes returned). Only the exchanges that can still fit the context are tokenized: the
        older ones are kept as they are, outside the model's window."""
        template = self.templates(saved.template)
        try:
            sampling = sampling_from(self.sampling, saved.sampling)
        except (TypeError, ConfigError) as exc:
            raise SessionFileError(f"{where}: bad sampling settings ({exc})") from None
        scene = parse_scene(saved.scene, where) if saved.scene is not None else None
        conv = Conversation(template, saved.system, saved.history)
        same_model = saved.model == self.model_name
        start = self._window_start(conv, saved, same_model)
        redone, exact = 0, self.engine.capabilities.exact_token_ids
        for t in saved.turns[:start]:
            usable = same_model and exact and self._usable_ids(t.reply_tokens)
            ids = t.reply_tokens if usable else []
            conv.earlier.append(
                Turn(t.message, [], [], t.reply, list(ids), [], [], t.finish_reason, t.reply_prefix)
            )
        for t in saved.turns[start:]:
            turn = conv.begin_turn(t.message, self.engine, t.reply_prefix)
            usable = same_model and self._usable_ids(t.reply_tokens)
            usable = usable and bool(t.reply_tokens or not t.reply) and exact
            redone += not usable and exact
            tokens = t.reply_tokens if usable else self.engine.tokenize_text(t.reply)
            conv.finish_turn(turn, t.reply, tokens, t.finish_reason, self.engine)
        changed = (scene.to_dict() if scene else None) != (
            self.scene.to_dict() if self.scene else None
        )
        self.conversation, self.sampling, self.last = conv, sampling, None
        self._fit_resumed_window()
        self.policy = turns_for(scene)
        if changed:
            for listener in self._scene_listeners:
                listener()
        if not redone:
            return []
        why = "another model" if not same_model else "token ids missing or outside the vocabulary"
        return [f"{redone} reply(ies) tokenized again from their text ({why})"]

    def _fit_resumed_window(self) -> None:
        """The window was chosen counting untokenized replies by a lower bound, so once
        tokenized it can pass the context (twice over, seen): slide the oldest out now, so
        `/stats`, the toolbar and the first turn see a window that fits with a reply's room."""
        conv = self.conversation
        sizes = [t.size() for t in conv.turns]
        if not conv.history or sum(sizes) + self.reply_budget() <= self.engine.n_ctx:
            return
        conv.drop_oldest(self._how_many_to_drop(sizes, 0, 0, 0), self.engine)

    def _window_start(self, conv: Conversation, saved: SavedChat, same_model: bool) -> int:
        """Where the model's part of a saved chat starts: where it was when saved, or later
        where the exchanges from there on could not fit the context anyway (counted from
        the newest, each tokenized as a later turn, until the context is passed)."""
        start = min(max(saved.window, 0), len(saved.turns))
        total, n_ctx = 0, self.engine.n_ctx
        for i in range(len(saved.turns) - 1, start - 1, -1):
            t = saved.turns[i]
            asked = conv.begin_turn(t.message, self.engine, t.reply_prefix, False)
            usable = same_model and self._usable_ids(t.reply_tokens) and t.reply_tokens
            # a reply to tokenize again: its bytes over the longest token, a lower bound
            at_least = len(t.reply.encode("utf-8")) // max(self.engine.max_token_bytes, 1)
            total += len(asked.prompt_tokens) + (len(t.reply_tokens) if usable else at_least)
            if total > n_ctx:
                return i + 1
        return start

    def on_scene_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a restore brings, replaces or takes away the roleplay scene
        (the REPL then switches to the command set of the chat in force)."""
        self._scene_listeners.append(listener)
