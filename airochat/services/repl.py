"""The interactive loop: read a message or a command, answer, autosave."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from airochat.adapters.engine import Done, TextChunk
from airochat.domain.templates import Template
from airochat.errors import AirochatError
from airochat.services.chat import ChatSession, Notice
from airochat.services.commands import ChatIO, Commands
from airochat.services.sessions import save_session


def reply_summary(done: Done) -> str:
    return (
        f"{done.generated} tokens · {done.tokens_per_s:.1f} tok/s · "
        f"first token {done.ttft_s:.2f}s · read {done.prompt_eval_tokens} new prompt tokens"
    )


def answer(session: ChatSession, io: ChatIO, message: str, stats: bool = True) -> Done | None:
    done: Done | None = None
    for event in session.send(message):
        if isinstance(event, TextChunk):
            io.stream(event.text)
        elif isinstance(event, Notice):
            io.notice(event.text)
        else:
            done = event
    if done is not None:
        summary = reply_summary(done) if stats else ""
        io.end_reply(summary, cut=done.finish_reason == "interrupted")
    return done


def context_gauge(session: ChatSession) -> str:
    st = session.stats()
    pct = 100 * st.context_used // max(st.context_size, 1)
    return f"{session.model_name} · context {st.context_used}/{st.context_size} ({pct}%)"


def run_repl(
    session: ChatSession,
    io: ChatIO,
    template_by_name: Callable[[str], Template],
    session_path: Path | None = None,
    stats: bool = True,
) -> None:
    """Read messages and answer them until the user leaves."""

    def send(message: str) -> None:
        try:
            answer(session, io, commands.compose(message), commands.show_stats)
        finally:
            if session_path is not None and session.conversation.turns:
                save_session(session, session_path)  # autosave, even after Ctrl-C

    commands = Commands(session, io, send, template_by_name, session_path)
    commands.show_stats = stats
    while True:
        message = io.read_message()
        if message is None:
            return
        if not message.strip():
            continue
        try:
            if message.startswith("/") and not message.startswith("//"):
                if commands.run(message.strip()):
                    return
                continue
            send(message[1:] if message.startswith("//") else message)
        except AirochatError as exc:
            io.error(str(exc))
