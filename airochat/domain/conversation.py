"""A chat as the model sees it: turns kept as token ids, so each prompt extends the last one.

Every assistant reply is closed by the template's end-of-reply tokens (the EOS token) however it
ended -- its own EOS, a stop string, the token limit, or Ctrl-C -- and the reply's tokens are kept
exactly as generated. The next prompt is then the previous tokens plus the new turn's, which lets
llama.cpp reuse its KV cache instead of re-reading the chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from airochat.domain.templates import Segment, Template, Tokenizer, encode, render

_TRAILING_BLANK_LINES = re.compile(r"(?:\n[ \t\r\f\v]*)+\Z")


def tidy_message(text: str) -> str:
    """A message as sent: trailing whitespace-only lines (a file's last newline, a pasted
    blank line) removed, so the prompt reads `{message} ASSISTANT:` as the cards write it.
    Inner newlines and the text's own spacing are kept."""
    return _TRAILING_BLANK_LINES.sub("", text)


@dataclass
class Turn:
    """One exchange. `prompt` is the turn's own part of the prompt (with the system prompt when it
    opened the context), `reply_tokens` what the model generated, `end` what closes the reply.
    `head` is set when the turn opens the chat and its prompt tokens are `head` + the tokens the
    same message has as a later turn (see `Conversation.opening`)."""

    message: str
    prompt: list[Segment]
    prompt_tokens: list[int]
    reply: str = ""
    reply_tokens: list[int] = field(default_factory=list)
    end: list[Segment] = field(default_factory=list)
    end_tokens: list[int] = field(default_factory=list)
    finish_reason: str = ""
    reply_prefix: str = ""
    head: list[int] | None = None

    @property
    def complete(self) -> bool:
        return bool(self.finish_reason)

    def tokens(self) -> list[int]:
        return [*self.prompt_tokens, *self.reply_tokens, *self.end_tokens]

    def size(self) -> int:
        """len(self.tokens()), without building the list."""
        return len(self.prompt_tokens) + len(self.reply_tokens) + len(self.end_tokens)

    def text(self) -> str:
        return (
            render([*self.prompt, self.reply, *self.end]) if self.complete else render(self.prompt)
        )


def _spelled(segment: Segment, first: bool) -> str:
    """A segment's text as `render` spells it (BOS is silent only at the very start)."""
    return render([segment]) if first else render(["", segment])


def _without_suffix(segments: list[Segment], suffix: str) -> list[Segment] | None:
    """`segments` less a rendered text `suffix` taken off their end, or None when they do not
    end with it. A text segment may be cut; a special token may not."""
    rest = suffix
    for i in range(len(segments) - 1, -1, -1):
        if not rest:
            return segments[: i + 1]
        seg = segments[i]
        text = _spelled(seg, i == 0)
        if rest.endswith(text):
            rest = rest[: len(rest) - len(text)]
        elif isinstance(seg, str) and text.endswith(rest):
            return [*segments[:i], seg[: len(seg) - len(rest)]]
        else:
            return None
    return [] if not rest else None


@dataclass
class Conversation:
    """The turns the model remembers. With `history` off, each turn stands alone: the system
    prompt and that message only (the FastChat `--no-history` behaviour of the airoboros cards)."""

    template: Template
    system: str
    history: bool = True
    turns: list[Turn] = field(default_factory=list)
    # The exchanges slid out of the model's window (oldest first): no longer read by the
    # model, still part of the chat (saved, undone). Their prompt tokens are not kept.
    earlier: list[Turn] = field(default_factory=list)

    def _context_turns(self) -> list[Turn]:
        if self.history:
            return self.turns
        return self.turns[-1:]

    def _segments(self, message: str, opens: bool, reply_prefix: str) -> list[Segment]:
        if opens:
            segments = self.template.first_turn(self.system, message)
        else:
            segments = self.template.next_turn(message)
        if reply_prefix:
            if segments and isinstance(segments[-1], str):
                segments[-1] += reply_prefix
            else:
                segments.append(reply_prefix)
        return segments

    def opening(
        self, message: str, reply_prefix: str, tokenizer: Tokenizer
    ) -> tuple[list[Segment], list[int], list[int] | None]:
        """The chat's first turn: segments, tokens, and the head.

        When the first turn's text is some head text followed by exactly the text this message
        has as a later turn (the airoboros formats: `{system} ` + `USER: ... ASSISTANT: `), it
        is tokenized as head + the later-turn tokens. The text is byte for byte the same; what
        it buys is that dropping the oldest exchanges never changes the tokens of those that
        stay -- the next one becomes head + its own tokens -- so the KV cache of what stays can
        be shifted instead of read again. Otherwise (llama-2's `[INST] <<SYS>>` first turn) the
        whole turn is tokenized at once and the head is None."""
        segments = self._segments(message, True, reply_prefix)
        block = encode(self._segments(message, False, reply_prefix), tokenizer)
        spelled = "".join(tokenizer.token_text(t) for t in block)
        head = _without_suffix(segments, spelled) if spelled else None
        if head is None:
            return segments, encode(segments, tokenizer), None
        head_tokens = encode(head, tokenizer)
        return segments, head_tokens + block, head_tokens

    def begin_turn(
        self,
        message: str,
        tokenizer: Tokenizer,
        reply_prefix: str = "",
        opens: bool | None = None,
    ) -> Turn:
        """Render and tokenize the next user turn (not yet added). `reply_prefix` starts the
        model's reply for it (a roleplay speaker's `Name:`), in the same text as the turn.
        `opens`: render it as the chat's first turn (default: when it would be)."""
        if opens is None:
            opens = not self.history or not self.turns
        if opens:
            segments, tokens, head = self.opening(message, reply_prefix, tokenizer)
        else:
            segments = self._segments(message, False, reply_prefix)
            tokens, head = encode(segments, tokenizer), None
        turn = Turn(message=message, prompt=segments, prompt_tokens=tokens, head=head)
        turn.reply_prefix = reply_prefix
        return turn

    def _reopen(self, turn: Turn, opens: bool, tokenizer: Tokenizer) -> None:
        fresh = self.begin_turn(turn.message, tokenizer, turn.reply_prefix, opens)
        turn.prompt, turn.prompt_tokens, turn.head = fresh.prompt, fresh.prompt_tokens, fresh.head

    def opening_tokens(self, turn: Turn, tokenizer: Tokenizer) -> list[int]:
        """The prompt tokens `turn` would have if it opened the chat."""
        return self.opening(turn.message, turn.reply_prefix, tokenizer)[1]

    def rebuild(self, tokenizer: Tokenizer) -> None:
        """Re-render every turn's template parts (after a system prompt, template or memory
        change). Replies keep the token ids the model generated."""
        for i, turn in enumerate(self.turns):
            self._reopen(turn, not self.history or i == 0, tokenizer)
            turn.end = self.template.end_of_reply()
            turn.end_tokens = encode(turn.end, tokenizer)

    def drop_oldest(self, count: int, tokenizer: Tokenizer) -> list[Turn]:
        """Slide the oldest `count` exchanges out of the model's window (into `earlier`: the
        chat keeps them); the next one now opens the chat (system prompt and all). The new
        state is built first and put in place at once, so an interrupt leaves the old one."""
        dropped, rest = self.turns[:count], self.turns[count:]
        if rest:
            first = rest[0]
            fresh = self.begin_turn(first.message, tokenizer, first.reply_prefix, True)
            rest[0] = replace(
                first, prompt=fresh.prompt, prompt_tokens=fresh.prompt_tokens, head=fresh.head
            )
        self.earlier, self.turns = [*self.earlier, *dropped], rest
        return dropped

    def extend_last_reply(self, text: str, tokens: list[int]) -> None:
        """Append text (and its ids) to the last reply, as if the model had written it."""
        last = self.turns[-1]
        last.reply += text
        last.reply_tokens = [*last.reply_tokens, *tokens]

    def undo(self) -> Turn | None:
        """Take back the last exchange (one slid out of the window when none is left in it)."""
        if self.turns:
            return self.turns.pop()
        return self.earlier.pop() if self.earlier else None

    def all_turns(self) -> list[Turn]:
        """Every exchange of the chat, those slid out of the window first."""
        return [*self.earlier, *self.turns]

    def prompt_tokens(self, turn: Turn) -> list[int]:
        """Everything the model reads before replying to `turn`."""
        before = self.turns if self.history else []
        return [tok for t in before for tok in t.tokens()] + turn.prompt_tokens

    def finish_turn(
        self,
        turn: Turn,
        reply: str,
        reply_tokens: list[int],
        finish_reason: str,
        tokenizer: Tokenizer,
    ) -> None:
        turn.reply = reply
        turn.reply_tokens = list(reply_tokens)
        turn.end = self.template.end_of_reply()
        turn.end_tokens = encode(turn.end, tokenizer)
        turn.finish_reason = finish_reason
        self.turns.append(turn)

    def tokens(self) -> list[int]:
        return [tok for t in self._context_turns() for tok in t.tokens()]

    def render(self) -> str:
        """The exact text of the context so far, replies included, EOS shown as `</s>`."""
        return "".join(t.text() for t in self._context_turns())

    def reset(self) -> None:
        self.turns.clear()
        self.earlier.clear()
