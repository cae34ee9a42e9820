"""The interactive loop: read a message or a command, answer, autosave."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from airochat.adapters.engine import Done, TextChunk
from airochat.domain.templates import Template
from airochat.errors import AirochatError
from airochat.services.chat import ChatSession, Notice
from airochat.services.commands import ChatIO, Commands
from airochat.services.roleplay import RoleplaySession, SceneNote
from airochat.services.scene_commands import SceneCommands
from airochat.services.sessions import save_session


def reply_summary(done: Done) -> str:
    return (
        f"{done.generated} tokens · {done.tokens_per_s:.1f} tok/s · "
        f"first token {done.ttft_s:.2f}s · read {done.prompt_eval_tokens} new prompt tokens"
    )


def show_events(io: ChatIO, events: Iterator[Any], stats: bool = True) -> Done | None:
    """Render a turn's events: text as it streams, notices, then the summary line."""
    done: Done | None = None
    notes: list[str] = []
    for event in events:
        if isinstance(event, TextChunk):
            io.stream(event.text)
        elif isinstance(event, Notice):
            io.notice(event.text)
        elif isinstance(event, SceneNote):
            notes.append(event.text)
        elif isinstance(event, Done):
            done = event
    if done is not None:
        summary = reply_summary(done) if stats else ""
        io.end_reply(summary, cut=done.finish_reason == "interrupted")
    for note in notes:
        io.notice(f"({note})")
    return done


def answer(session: ChatSession, io: ChatIO, message: str, stats: bool = True) -> Done | None:
    return show_events(io, session.send(message), stats)


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
    roleplay: RoleplaySession | None = None,
) -> None:
    """Read messages and answer them until the user leaves."""

    def send(message: str) -> None:
        text = commands.compose(message)
        events = roleplay.say(text) if roleplay else session.send(text)
        run_turn(events)

    def run_turn(events: Iterator[Any]) -> None:
        try:
            show_events(io, events, commands.show_stats)
        finally:
            if session_path is not None and session.conversation.turns:
                extra = roleplay.saved_extra() if roleplay else None
                save_session(session, session_path, extra)  # autosave, even after Ctrl-C

    if roleplay is not None:
        commands: Commands = SceneCommands(
            session, io, send, template_by_name, session_path, roleplay, run_turn
        )
    else:
        commands = Commands(session, io, send, template_by_name, session_path)
    commands.show_stats = stats
    if roleplay is not None and not roleplay.started:
        io.notice(roleplay.cast())
        try:
            run_turn(roleplay.start())
        except AirochatError as exc:
            io.error(str(exc))  # the REPL stays: /scene, /set, /exit still work
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
