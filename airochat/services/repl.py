"""The interactive loop: read a message or a command, answer, autosave."""

from __future__ import annotations

from collections.abc import Iterator

from airochat.domain.events import ChatEvent, Done, Notice, ReplyNote, TextChunk
from airochat.errors import AirochatError
from airochat.services.chat import Chat
from airochat.services.chat_io import ChatIO
from airochat.services.commands import Commands, commands_for, drafts_note, read_count
from airochat.services.kept_chat import KeptChat
from airochat.services.roleplay import SceneTurns

ENDINGS = {"repeated": " · stopped: it was repeating itself", "length": " · at the length limit"}


def reply_summary(done: Done) -> str:
    return (
        f"{done.generated} tokens · {done.tokens_per_s:.1f} tok/s · "
        f"first token {done.ttft_s:.2f}s · read {read_count(done)} new prompt tokens"
        + drafts_note(done)
        + ENDINGS.get(done.finish_reason, "")
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


RECAP_TURNS = 2  # the exchanges a resumed chat shows, so the user knows where it stands
RECAP_LINES = 4  # of each message and reply: a long one is shown by its end
RECAP_CHARS = 300


def recap(chat: Chat) -> list[str]:
    """The chat's last exchanges, for the screen of a resumed chat: `> message`, then the
    reply, each cut to its last few lines (`…` says where)."""
    turns = chat.conversation.all_turns()[-RECAP_TURNS:]
    return [line for t in turns for line in (f"> {_tail(t.message)}", _tail(t.reply))]


def _tail(text: str) -> str:
    lines = text.strip().split("\n")
    kept: list[str] = []
    for line in reversed(lines):
        if len(kept) == RECAP_LINES or sum(map(len, kept)) + len(line) > RECAP_CHARS:
            break
        kept.insert(0, line)
    if not kept:  # one long line: its end
        return "…" + lines[-1][-RECAP_CHARS:].lstrip()
    return "\n".join(["…"] * (len(kept) < len(lines)) + kept)


def context_gauge(chat: Chat) -> str:
    st = chat.stats()
    pct = 100 * st.context_used // max(st.context_size, 1)
    return f"{chat.model_name} · context {st.context_used}/{st.context_size} ({pct}%)"


class Repl:
    """The loop and what it keeps between turns: the command set in force and the chat's
    life on disk (`KeptChat`: autosave after every change, the model's cache at the end)."""

    def __init__(self, kept: KeptChat, io: ChatIO, stats: bool = True, tools: str = "") -> None:
        self.kept = kept
        self.tools = tools  # tools.yaml for /plan
        self.chat = kept.chat
        self.io = io
        self.stats = stats
        self.commands = self._commands()
        # A /load that brings or takes away a scene brings its command set.
        self.chat.on_scene_change(self._scene_changed)
        io.attach(lambda: context_gauge(self.chat), lambda: self.commands.names())

    def _commands(self) -> Commands:
        commands = commands_for(self.kept, self.io, self.play)
        commands.show_stats = self.stats
        commands.tools_file = self.tools
        return commands

    def _scene_changed(self) -> None:
        self.stats = self.commands.show_stats
        self.commands = self._commands()

    def play(self, events: Iterator[ChatEvent]) -> None:
        try:
            show_events(self.io, events, self.commands.show_stats)
        finally:
            self.autosave()  # even after Ctrl-C

    def autosave(self) -> None:
        """Save the chat after every change; a save that fails is said once, and the chat
        goes on in memory (`/save PATH` can still keep it)."""
        failed = self.kept.autosave()
        if failed:
            self.io.error(failed)

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
            leave = self.commands.run(message.strip())
            self.stats = self.commands.show_stats
            return leave
        self.commands.send(message[1:] if message.startswith("//") else message)
        return False

    def run(self) -> None:
        """Read messages and answer them until the user leaves."""
        try:
            self.start_scene()
            self._loop()
        finally:
            self.autosave()
            for note in self.kept.save_cache():
                self.io.notice(note)
            self.io.close()

    def _loop(self) -> None:
        while True:
            message = self.io.read_message()
            if message is None:
                return
            if not message.strip():
                continue
            if self._turn(message):
                return

    def _turn(self, message: str) -> bool:
        """Handle one line; True means leave. Nothing inside a turn ends the REPL: Ctrl-C at
        any moment of it (fitting the context, saving) comes back to the prompt, the chat as
        it was or with the turn kept, and a failure is one line."""
        try:
            if self.handle(message):
                return True
            self.autosave()
        except AirochatError as exc:
            self.io.error(str(exc))
            self.autosave()
        except KeyboardInterrupt:
            self.io.notice("(stopped; the chat is kept)")
            self.autosave()
        except (ValueError, OSError, RecursionError, MemoryError) as exc:
            self.io.error(f"this turn failed ({type(exc).__name__}: {exc}); the chat is kept")
            self.autosave()
        return False
