"""The interactive loop: read a message or a command, answer, autosave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from airochat.adapters.storage import StorageError
from airochat.domain.events import ChatEvent, Done, Notice, ReplyNote, TextChunk
from airochat.errors import AirochatError
from airochat.services import session_cache, session_file
from airochat.services.chat import Chat
from airochat.services.chat_io import ChatIO
from airochat.services.commands import Commands, commands_for, read_count
from airochat.services.roleplay import SceneTurns


def reply_summary(done: Done) -> str:
    return (
        f"{done.generated} tokens · {done.tokens_per_s:.1f} tok/s · "
        f"first token {done.ttft_s:.2f}s · read {read_count(done)} new prompt tokens"
    )


def show_events(io: ChatIO, events: Iterator[ChatEvent], stats: bool = True) -> Done | None:
    """Render a turn's events: text as it streams, notices, then the summary line."""
    done: Done | None = None
    notes: list[str] = []
    for event in events:
        match event:
            case TextChunk(text=text):
                io.stream(text)
            case Notice(text=text):
                io.notice(text)
            case ReplyNote(text=text):
                notes.append(text)
            case Done():
                done = event
    if done is not None:
        summary = reply_summary(done) if stats else ""
        io.end_reply(summary, cut=done.finish_reason == "interrupted")
    for note in notes:
        io.notice(f"({note})")
    return done


def context_gauge(chat: Chat) -> str:
    st = chat.stats()
    pct = 100 * st.context_used // max(st.context_size, 1)
    return f"{chat.model_name} · context {st.context_used}/{st.context_size} ({pct}%)"


class Repl:
    """The loop and what it keeps between turns: the command set in force and the autosave."""

    def __init__(
        self,
        chat: Chat,
        io: ChatIO,
        session_path: Path | None = None,
        stats: bool = True,
        cache_max_bytes: int | None = None,
    ) -> None:
        self.chat = chat
        self.io = io
        self.session_path = session_path
        self.stats = stats
        self.cache_max_bytes = cache_max_bytes  # keep the KV cache with the session
        self.commands = self._commands()
        self._saved = ""  # what the session file holds, to write only on change
        self._save_error = ""
        io.attach(lambda: context_gauge(chat), lambda: self.commands.names())

    def _commands(self) -> Commands:
        commands = commands_for(self.chat, self.io, self.play, self.session_path)
        commands.show_stats = self.stats
        commands.cache_max_bytes = self.cache_max_bytes
        return commands

    def play(self, events: Iterator[ChatEvent]) -> None:
        try:
            show_events(self.io, events, self.commands.show_stats)
        finally:
            self.autosave()  # even after Ctrl-C

    def autosave(self) -> None:
        """Save the session after every change (a turn, /set, /system, /undo ...). A save that
        fails is said once; the chat goes on in memory and `/save PATH` can still keep it."""
        if self.session_path is None:
            return
        text = session_file.dumps(self.chat)
        if text == self._saved or (not self._saved and not self.chat.started):
            return
        try:
            session_file.write(self.session_path, text)
        except StorageError as exc:
            if str(exc) != self._save_error:
                self.io.error(f"{exc} -- the chat goes on unsaved (/save PATH to keep it)")
            self._save_error = str(exc)
            return
        self._saved, self._save_error = text, ""

    def start_scene(self) -> None:
        """A scene that has not started yet opens with its cast and its first turn."""
        policy = self.chat.policy
        if not isinstance(policy, SceneTurns) or self.chat.started:
            return
        self.io.notice(policy.describe())
        try:
            self.play(self.chat.send(""))
        except AirochatError as exc:
            self.io.error(str(exc))  # the REPL stays: /scene, /set, /exit still work

    def handle(self, message: str) -> bool:
        """One line from the user; True means leave."""
        if message.startswith("/") and not message.startswith("//"):
            scene_before = self.chat.scene
            leave = self.commands.run(message.strip())
            self.stats = self.commands.show_stats
            if self.chat.scene is not scene_before:  # /load brought or took away a scene
                self.commands = self._commands()
            return leave
        self.commands.send(message[1:] if message.startswith("//") else message)
        return False

    def run(self) -> None:
        """Read messages and answer them until the user leaves."""
        if self.session_path is not None and self.chat.started:
            self._saved = session_file.dumps(self.chat)  # resumed: the file holds this
        try:
            self.start_scene()
            self._loop()
        finally:
            self.autosave()
            self.save_cache()
            self.io.close()

    def save_cache(self) -> None:
        if self.session_path is None or self.cache_max_bytes is None or not self._saved:
            return
        note = session_cache.save(self.chat, self.session_path, self.cache_max_bytes)
        if note:
            self.io.notice(note)

    def _loop(self) -> None:
        while True:
            message = self.io.read_message()
            if message is None:
                return
            if not message.strip():
                continue
            try:
                if self.handle(message):
                    return
            except AirochatError as exc:
                self.io.error(str(exc))
            self.autosave()
