"""The interactive loop and its slash commands, written against a small I/O interface.

Commands document themselves (aider's pattern): every `cmd_<name>` method is a command and its
docstring is its `/help` line. A command returns whether to leave; it never exits the process.
"""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path
from typing import Protocol

from airochat.adapters.engine import Done, TextChunk
from airochat.domain.closed_context import Document, closed_context, document_from_path
from airochat.errors import AirochatError, UsageError
from airochat.services.chat import ChatSession


class ChatIO(Protocol):
    def read_message(self) -> str | None: ...
    def stream(self, text: str) -> None: ...
    def end_reply(self, summary: str, cut: bool = False) -> None: ...
    def show(self, text: str) -> None: ...
    def notice(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...


def reply_summary(done: Done) -> str:
    return (
        f"{done.generated} tokens · {done.tokens_per_s:.1f} tok/s · "
        f"first token {done.ttft_s:.2f}s · read {done.prompt_eval_tokens} new prompt tokens"
    )


class Commands:
    def __init__(self, session: ChatSession, io: ChatIO) -> None:
        self.session = session
        self.io = io
        self.staged: list[Document] = []  # closed-context documents for the next message

    def compose(self, message: str) -> str:
        """The message as sent: wrapped in BEGININPUT blocks when documents are staged."""
        if not self.staged:
            return message
        docs, self.staged = self.staged, []
        return closed_context(docs, message, {})

    def names(self) -> list[str]:
        return sorted(n[4:] for n in dir(self) if n.startswith("cmd_"))

    def run(self, line: str) -> bool:
        """Run a `/command`; True means leave the REPL."""
        name, _, arg = line[1:].partition(" ")
        matches = [n for n in self.names() if n.startswith(name.lower())] if name else []
        if name.lower() in self.names():
            matches = [name.lower()]
        if len(matches) != 1:
            hint = f"ambiguous: {', '.join(matches)}" if matches else f"unknown command /{name}"
            self.io.error(f"{hint} (/help lists commands; start with // to send a '/' message)")
            return False
        method = getattr(self, f"cmd_{matches[0]}")
        return bool(method(arg.strip()))

    def cmd_help(self, _arg: str) -> bool:
        """List the commands."""
        lines = [f"/{n:<8} {inspect.getdoc(getattr(self, f'cmd_{n}')) or ''}" for n in self.names()]
        lines.append("Enter sends · Alt+Enter or Ctrl+J: new line · Ctrl-C stops a reply")
        self.io.show("\n".join(lines))
        return False

    def cmd_exit(self, _arg: str) -> bool:
        """Leave (Ctrl-D too)."""
        return True

    def cmd_bye(self, arg: str) -> bool:
        """Leave, like /exit."""
        return True

    def cmd_prompt(self, _arg: str) -> bool:
        """Show the exact text the model saw for the latest turn, reply included."""
        text = self.session.prompt_text()
        self.io.show(text if text else "(nothing sent yet)")
        return False

    def cmd_context(self, arg: str) -> bool:
        """Stage files for the next message as closed-context input (BEGININPUT blocks)."""
        if not arg:
            names = ", ".join(d.meta.get("source", "?") for d in self.staged) or "none"
            self.io.notice(f"staged: {names} (/context FILE... to add)")
            return False
        try:
            docs = [document_from_path(Path(p).expanduser()) for p in shlex.split(arg)]
        except (UsageError, ValueError) as exc:
            self.io.error(str(exc))
            return False
        self.staged += docs
        self.io.notice(f"{len(self.staged)} document(s) staged for your next message")
        return False

    def cmd_reset(self, _arg: str) -> bool:
        """Start a new chat with the same settings."""
        self.session.reset()
        self.io.notice("New chat.")
        return False


def run_repl(session: ChatSession, io: ChatIO) -> None:
    """Read messages and answer them until the user leaves."""
    commands = Commands(session, io)
    while True:
        message = io.read_message()
        if message is None:
            return
        if not message.strip():
            continue
        if message.startswith("/") and not message.startswith("//"):
            if commands.run(message.strip()):
                return
            continue
        if message.startswith("//"):
            message = message[1:]
        try:
            answer(session, io, commands.compose(message))
        except AirochatError as exc:
            io.error(str(exc))


def answer(session: ChatSession, io: ChatIO, message: str) -> Done | None:
    done: Done | None = None
    for event in session.send(message):
        if isinstance(event, TextChunk):
            io.stream(event.text)
        else:
            done = event
    if done is not None:
        io.end_reply(reply_summary(done), cut=done.finish_reason == "interrupted")
    return done
