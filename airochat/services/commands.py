"""Slash commands. Each `cmd_<name>` method is a command and its docstring its `/help` line
(aider's pattern); the names in force are also what Tab completes, so a scene's commands
complete only in a scene. A command returns True to leave the REPL and never exits the process.
"""

from __future__ import annotations

import inspect
import shlex
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from airochat.domain.closed_context import Document, closed_context, document_from_path
from airochat.domain.config import Sampling
from airochat.domain.events import ChatEvent, Done
from airochat.errors import AirochatError, UsageError
from airochat.services.chat_io import ChatIO
from airochat.services.kept_chat import KeptChat
from airochat.services.roleplay import SceneTurns


def drafts_note(done: Done) -> str:
    """Speculative decoding's share of the reply, if it drafted."""
    if not done.drafted:
        return ""
    return f" · drafts: {done.accepted} of {done.drafted} accepted"


def read_count(done: Done) -> str:
    """What the engine read this turn; `?` where a server does not say."""
    return str(done.prompt_eval_tokens) if done.prompt_eval_tokens >= 0 else "?"


# Plays a turn's events on the screen (and autosaves): the REPL's own.
PlayTurn = Callable[[Iterator[ChatEvent]], None]


class Commands:
    def __init__(self, kept: KeptChat, io: ChatIO, play: PlayTurn) -> None:
        self.kept = kept  # the chat and its life on disk (/save, /load, /stats)
        self.chat = kept.chat
        self.io = io
        self.play = play
        self.staged: list[Document] = []  # closed-context documents for the next message
        self.tools_file = ""  # tools.yaml for /plan ("" : the built-ins)
        self.functions: dict[str, Any] | None = None  # /call FILE: the next message chooses
        self.show_stats = True

    def names(self) -> list[str]:
        return sorted(n[4:] for n in dir(self) if n.startswith("cmd_"))

    def compose(self, message: str) -> str:
        """The message as sent: wrapped in BEGININPUT blocks when documents are staged."""
        if not self.staged:
            return message
        docs, self.staged = self.staged, []
        return closed_context(docs, message, {})

    def send(self, message: str) -> None:
        if self.functions is not None:
            from airochat.services.repl_plans import call_in_repl

            functions, self.functions = self.functions, None
            call_in_repl(self.chat, self.io, self.play, functions, self.compose(message))
            return
        self.play(self.chat.send(self.compose(message)))

    def cmd_plan(self, arg: str) -> bool:
        """/plan QUESTION: the model plans (reWOO), the tools run (asked first)."""
        from airochat.services.repl_plans import plan_in_repl

        if not arg:
            raise UsageError("/plan QUESTION (tools from run --tools or tools = in config)")
        plan_in_repl(self.chat, self.io, self.play, self.tools_file, arg)
        return False

    def cmd_call(self, arg: str) -> bool:
        """/call FILE: the next message picks a function from FILE; its command runs."""
        from airochat.domain.functions import load_functions

        if not arg:
            raise UsageError("/call FILE (a functions file, as ask --functions takes)")
        self.functions = load_functions(Path(arg).expanduser())
        self.io.notice(f"{len(self.functions)} function(s): your next message chooses one")
        return False

    def run(self, line: str) -> bool:
        """Run a `/command`; True means leave the REPL."""
        name, _, arg = line[1:].partition(" ")
        low = name.lower()
        matches = [low] if low in self.names() else [n for n in self.names() if n.startswith(low)]
        if not name or len(matches) != 1:
            hint = f"ambiguous: /{', /'.join(matches)}" if matches else f"unknown command /{name}"
            self.io.error(f"{hint} (/help lists commands; start with // to send a '/' message)")
            return False
        try:
            return bool(getattr(self, f"cmd_{matches[0]}")(arg.strip()))
        except AirochatError as exc:
            self.io.error(str(exc))
            return False

    # -- leaving and help ----------------------------------------------------------------------

    def cmd_help(self, _arg: str) -> bool:
        """List the commands."""
        docs = [(f"/{n}", inspect.getdoc(getattr(self, f"cmd_{n}")) or "") for n in self.names()]
        self.io.show_terms(docs)
        self.io.notice('Enter sends · Alt+Enter or Ctrl+J: new line · """ fences a long message')
        self.io.notice("Ctrl-C stops a reply · Tab completes commands and paths · Ctrl-D leaves")
        return False

    def cmd_exit(self, _arg: str) -> bool:
        """Leave (Ctrl-D too)."""
        return True

    def cmd_bye(self, _arg: str) -> bool:
        """Leave, like /exit."""
        return True

    # -- the chat --------------------------------------------------------------------------------

    def cmd_reset(self, _arg: str) -> bool:
        """Start a new chat with the same settings."""
        self.chat.reset()
        self.io.notice("New chat.")
        return False

    def cmd_undo(self, _arg: str) -> bool:
        """Drop the last exchange."""
        turn = self.chat.undo()
        first = turn.message.splitlines()[0][:60] if turn and turn.message else ""
        self.io.notice(f"Dropped: {first}" if turn else "Nothing to undo.")
        return False

    def cmd_regen(self, _arg: str) -> bool:
        """Answer the last message again."""
        self.play(self.chat.regen())
        return False

    def cmd_alt(self, arg: str) -> bool:
        """Flip the last reply to its next alternative (/regen keeps each; Left/Right too)."""
        from airochat.services.library import flip

        key = arg in ("-", "+")  # Left/Right at an empty prompt: quiet when there is none
        try:
            said = flip(self.chat, self.kept.store, -1 if arg == "-" else 1)
        except UsageError:
            if key:
                return False
            raise
        if key and not said[0].startswith("alternative"):
            return False
        self.io.notice(said[0])
        if said[0].startswith("alternative"):
            last = self.chat.conversation.turns[-1]
            self.io.show(last.reply_prefix + last.reply)
        for line in said[1:]:
            self.io.notice(line)
        return False

    def cmd_rewind(self, arg: str) -> bool:
        """Go back N exchanges (default 1): /rewind N; the old branch stays in the library."""
        from airochat.services.library import rewind

        if arg and not arg.isdigit():
            raise UsageError("usage: /rewind N")
        self.io.notice(rewind(self.chat, int(arg or 1)))
        return False

    def cmd_title(self, arg: str) -> bool:
        """Name the chat in the library: /title TEXT."""
        from airochat.services.library import set_title

        self.io.notice(set_title(self.kept.store, arg))
        return False

    def cmd_edit(self, _arg: str) -> bool:
        """Edit the last message ($EDITOR, else inline), then answer it again."""
        turns = self.chat.conversation.turns
        if not turns:
            raise UsageError("nothing to edit yet")
        edited = self.io.edit_text(turns[-1].message)
        if not edited or not edited.strip():
            self.io.notice("Unchanged.")
            return False
        self.play(self.chat.regen(edited))
        return False

    def cmd_read(self, arg: str) -> bool:
        """Send a file's text as your message: /read FILE."""
        if not arg:
            raise UsageError("usage: /read FILE")
        self.send(document_from_path(Path(arg).expanduser()).text)
        return False

    def cmd_context(self, arg: str) -> bool:
        """Stage files for the next message as closed-context input (BEGININPUT blocks)."""
        if not arg:
            names = ", ".join(d.meta.get("source", "?") for d in self.staged) or "none"
            self.io.notice(f"staged: {names} (/context FILE... to add)")
            return False
        try:
            docs = [document_from_path(Path(p).expanduser()) for p in shlex.split(arg)]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.staged += docs
        self.io.notice(f"{len(self.staged)} document(s) staged for your next message")
        return False

    # -- seeing inside ---------------------------------------------------------------------------

    def cmd_prompt(self, _arg: str) -> bool:
        """Show the exact text the model saw for the latest turn, reply included."""
        text = self.chat.prompt_text()
        self.io.show(text if text else "(nothing sent yet)")
        return False

    def cmd_stats(self, _arg: str) -> bool:
        """Last reply: tokens, time to first token, tokens/s; the chat: context used."""
        st = self.chat.stats()
        used = f"context {st.context_used} of {st.context_size} tokens"
        kept = self.kept.cache_size()
        if kept is not None:
            used += f" · model cache saved with the session: {kept / 2**20:.1f} MiB"
        if st.last is None:
            self.io.show(f"no reply yet · {used}")
            return False
        d = st.last
        self.io.show(
            f"last reply: {d.prompt_tokens} prompt tokens ({read_count(d)} read new) · "
            f"{d.generated} generated · first token {d.ttft_s:.2f}s · {d.tokens_per_s:.1f} tok/s"
            f" · ended: {d.finish_reason}{drafts_note(d)}\n{used}"
        )
        return False

    def cmd_system(self, arg: str) -> bool:
        """Show the system prompt, or set it: /system TEXT (/system "" for none)."""
        if not arg:
            self.io.show(self.chat.conversation.system or "(no system prompt)")
            return False
        text = "" if arg in ('""', "''") else arg
        self.chat.set_system(text)
        said = "System prompt cleared" if not text else "System prompt set"
        self.io.notice(f"{said} (the chat is re-read with it next turn).")
        return False

    def cmd_show(self, _arg: str) -> bool:
        """Show the settings /set can change."""
        s = self.chat.sampling
        conv = self.chat.conversation
        rows = [f"{f.name} = {getattr(s, f.name)}" for f in fields(Sampling)]
        rows += [
            f"template = {conv.template.name}",
            f"history = {'on' if conv.history else 'off'}",
            f"stats = {'on' if self.show_stats else 'off'}",
            f"model = {self.chat.model_name} · context {self.chat.engine.n_ctx}",
        ]
        self.io.show("\n".join(rows))
        return False

    def cmd_set(self, arg: str) -> bool:
        """Change a setting: /set KEY VALUE (see /show)."""
        key, _, value = arg.partition(" ")
        value = value.strip()
        if not key or not value:
            raise UsageError("usage: /set KEY VALUE (keys: /show)")
        numeric = {f.name: f.type for f in fields(Sampling)}
        if key in numeric:
            try:
                number = int(value) if numeric[key] in (int, "int") else float(value)
            except ValueError:
                raise UsageError(f"{key} takes a number, not {value!r}") from None
            try:
                self.chat.set_sampling(**{key: number})
            except AirochatError as exc:
                raise UsageError(str(exc)) from None
        elif key == "template":
            self.chat.set_template(value)
        elif key in ("history", "stats"):
            if value not in ("on", "off"):
                raise UsageError(f"{key} is on or off")
            if key == "history":
                self.chat.set_history(value == "on")
            else:
                self.show_stats = value == "on"
        else:
            raise UsageError(f"unknown setting {key!r} (see /show)")
        self.io.notice(f"{key} = {value}")
        return False

    # -- files -----------------------------------------------------------------------------------

    def cmd_save(self, arg: str) -> bool:
        """Save the chat and its settings: /save FILE (JSON; the model's cache as FILE.kv)."""
        for note in self.kept.save_as(Path(arg).expanduser() if arg else None):
            self.io.notice(note)
        return False

    def cmd_load(self, arg: str) -> bool:
        """Load a saved chat (and its scene): /load FILE."""
        if not arg:
            raise UsageError("usage: /load FILE")
        for note in self.kept.load_from(Path(arg).expanduser()):
            self.io.notice(note)
        return False


class SceneCommands(Commands):
    """The commands of a roleplay scene: /as, /me, /scene, /next on top of the rest."""

    @property
    def scene(self) -> SceneTurns:
        policy = self.chat.policy
        assert isinstance(policy, SceneTurns)
        return policy

    def cmd_as(self, arg: str) -> bool:
        """Put a line in a character's mouth: /as NAME text (quotes in the text are kept)."""
        names = sorted(self.scene.cast.names, key=len, reverse=True)
        low = arg.lower()
        name = next((n for n in names if low.startswith(n.lower() + " ")), None)
        if name is None:
            cast = ", ".join(self.scene.cast.names)
            raise UsageError(f"usage: /as NAME text, NAME one of: {cast}")
        line = f"{name}: {arg[len(name) :].strip()}"
        self.chat.add_to_last_reply("\n" + line)
        self.io.show(line)
        return False

    def cmd_me(self, arg: str) -> bool:
        """Act as yourself: /me waves (sent as *waves*)."""
        text = arg.strip()
        if not text:
            raise UsageError("usage: /me ACTION")
        self.send(text if text.startswith("*") else f"*{text}*")
        return False

    def cmd_scene(self, _arg: str) -> bool:
        """Show the cast and the mode."""
        self.io.show(self.scene.describe())
        return False

    def cmd_next(self, arg: str) -> bool:
        """Single mode: who answers next: /next NAME (default: round robin)."""
        self.io.notice(f"{self.scene.set_next(arg)} answers next")
        return False


def commands_for(kept: KeptChat, io: ChatIO, play: PlayTurn) -> Commands:
    """The command set for the chat in force: a scene's has its own commands."""
    kind = SceneCommands if isinstance(kept.chat.policy, SceneTurns) else Commands
    return kind(kept, io, play)
