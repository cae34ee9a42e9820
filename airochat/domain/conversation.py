"""A chat as the model sees it: turns kept as token ids, so each prompt extends the last one.

Every assistant reply is closed by the template's end-of-reply tokens (the EOS token) however it
ended -- its own EOS, a stop string, the token limit, or Ctrl-C -- and the reply's tokens are kept
exactly as generated. The next prompt is then the previous tokens plus the new turn's, which lets
llama.cpp reuse its KV cache instead of re-reading the chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    opened the context), `reply_tokens` what the model generated, `end` what closes the reply."""

    message: str
    prompt: list[Segment]
    prompt_tokens: list[int]
    reply: str = ""
    reply_tokens: list[int] = field(default_factory=list)
    end: list[Segment] = field(default_factory=list)
    end_tokens: list[int] = field(default_factory=list)
    finish_reason: str = ""
    reply_prefix: str = ""

    @property
    def complete(self) -> bool:
        return bool(self.finish_reason)

    def tokens(self) -> list[int]:
        return [*self.prompt_tokens, *self.reply_tokens, *self.end_tokens]

    def text(self) -> str:
        return (
            render([*self.prompt, self.reply, *self.end]) if self.complete else render(self.prompt)
        )


@dataclass
class Conversation:
    """The turns the model remembers. With `history` off, each turn stands alone: the system
    prompt and that message only (the FastChat `--no-history` behaviour of the airoboros cards)."""

    template: Template
    system: str
    history: bool = True
    turns: list[Turn] = field(default_factory=list)

    def _context_turns(self) -> list[Turn]:
        if self.history:
            return self.turns
        return self.turns[-1:]

    def _segments(self, message: str, opens: bool) -> list[Segment]:
        if opens:
            return self.template.first_turn(self.system, message)
        return self.template.next_turn(message)

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
        segments = self._with_prefix(self._segments(message, opens), reply_prefix)
        turn = Turn(message=message, prompt=segments, prompt_tokens=encode(segments, tokenizer))
        turn.reply_prefix = reply_prefix
        return turn

    @staticmethod
    def _with_prefix(segments: list[Segment], reply_prefix: str) -> list[Segment]:
        if reply_prefix:
            if segments and isinstance(segments[-1], str):
                segments[-1] += reply_prefix
            else:
                segments.append(reply_prefix)
        return segments

    def opening_tokens(self, turn: Turn, tokenizer: Tokenizer) -> list[int]:
        """The prompt tokens `turn` would have if it opened the chat."""
        segments = self._with_prefix(self._segments(turn.message, True), turn.reply_prefix)
        return encode(segments, tokenizer)

    def rebuild(self, tokenizer: Tokenizer) -> None:
        """Re-render every turn's template parts (after a system prompt, template or memory
        change). Replies keep the token ids the model generated."""
        for i, turn in enumerate(self.turns):
            opens = not self.history or i == 0
            turn.prompt = self._with_prefix(self._segments(turn.message, opens), turn.reply_prefix)
            turn.prompt_tokens = encode(turn.prompt, tokenizer)
            turn.end = self.template.end_of_reply()
            turn.end_tokens = encode(turn.end, tokenizer)

    def drop_oldest(self, count: int, tokenizer: Tokenizer) -> list[Turn]:
        """Forget the oldest `count` exchanges; the next one now opens the chat (system prompt
        and all)."""
        dropped, self.turns = self.turns[:count], self.turns[count:]
        if self.turns:
            first = self.turns[0]
            first.prompt = self._with_prefix(
                self._segments(first.message, True), first.reply_prefix
            )
            first.prompt_tokens = encode(first.prompt, tokenizer)
        return dropped

    def extend_last_reply(self, text: str, tokens: list[int]) -> None:
        """Append text (and its ids) to the last reply, as if the model had written it."""
        last = self.turns[-1]
        last.reply += text
        last.reply_tokens = [*last.reply_tokens, *tokens]

    def undo(self) -> Turn | None:
        return self.turns.pop() if self.turns else None

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
