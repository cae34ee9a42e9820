"""The terminal: prompt_toolkit for input (key bindings, paste, history, completion), rich for
what we print (markdown replies, notices).

Input and output objects can be passed in, so tests can drive the real REPL code on a pipe;
pseudo-terminal tests cover the key bindings end to end.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from airochat.adapters.reply_views import PlainView, ReplyView, on_screen
from airochat.adapters.typeahead import TypeAhead
from airochat.errors import UsageError

if TYPE_CHECKING:  # prompt_toolkit is imported when a prompt is made, not with this module
    from airochat.adapters.input_history import InputHistory

FENCE = '"""'


def make_console(file: IO[str] | None = None, stderr: bool = False) -> Console:
    """rich honours NO_COLOR and drops styling when the stream is not a terminal. On stdout
    rich wraps (soft wrap on would crop markdown list items and block quotes at the edge);
    stderr carries one-line messages that scripts read, never broken by rich."""
    return Console(file=file, stderr=stderr, highlight=False, soft_wrap=stderr)


def loading(console: Console, what: str | None) -> None:
    """`Loading NAME ...`: a file's name is shown, never obeyed (nor read as rich markup)."""
    console.print(Text(on_screen(console, f"Loading {what} ..."), style="dim"))


def fence_open(text: str) -> bool:
    """A message that starts with a `\"\"\"` line continues until a closing `\"\"\"` line."""
    lines = text.split("\n")
    return lines[0].strip() == FENCE and not (len(lines) > 1 and lines[-1].strip() == FENCE)


def unfence(text: str) -> str:
    lines = text.split("\n")
    if len(lines) >= 2 and lines[0].strip() == FENCE and lines[-1].strip() == FENCE:
        return "\n".join(lines[1:-1])
    return text


@dataclass
class InputOptions:
    multiline: bool = False  # FastChat's habit: Enter adds a line, Alt+Enter sends
    history_file: Path | None = None
    path_commands: tuple[str, ...] = ("load", "save", "read", "context")
    commands: Callable[[], list[str]] = field(default=lambda: [])  # the names in force
    toolbar: Callable[[], str] = field(default=lambda: "")


def _completer(options: InputOptions) -> Any:
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document

    paths = PathCompleter(expanduser=True)

    class SlashCompleter(Completer):
        def get_completions(self, document: Document, event: Any) -> Iterable[Completion]:
            text = document.text_before_cursor
            if not text.startswith("/") or "\n" in text:
                return
            name, space, rest = text[1:].partition(" ")
            if not space:
                for cmd in options.commands():
                    if cmd.startswith(name):
                        yield Completion(cmd, start_position=-len(name))
            elif name in options.path_commands:
                sub = Document(rest, len(rest))
                yield from paths.get_completions(sub, event)

    return SlashCompleter()


class TerminalIO:
    """Reads messages with prompt_toolkit, writes replies and notices with rich."""

    def __init__(
        self,
        console: Console | None = None,
        options: InputOptions | None = None,
        view: Callable[[], ReplyView] | None = None,
        pt_input: Any = None,
        pt_output: Any = None,
    ) -> None:
        self.console = console or make_console()
        self.options = options or InputOptions()
        self._new_view = view or (lambda: PlainView(self.console))
        self._history: InputHistory | None = None
        self._told_history = False
        self._session = self._prompt_session(pt_input, pt_output)
        self._view: ReplyView | None = None
        self._typeahead = TypeAhead(-1 if pt_input is not None else None)
        self._told_typeahead = False

    def _prompt_session(self, pt_input: Any, pt_output: Any) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        from airochat.adapters.input_history import InputHistory

        opts = self.options
        self._history = InputHistory(opts.history_file) if opts.history_file else None
        history = self._history if self._history is not None else InMemoryHistory()
        return PromptSession(
            multiline=True,  # pasted newlines stay in the buffer; Enter is bound below
            key_bindings=self._bindings(),
            history=history,
            completer=_completer(opts),
            complete_while_typing=False,
            input=pt_input,
            output=pt_output,
            prompt_continuation=lambda width, _n, _soft: "." * (width - 1) + " ",
            bottom_toolbar=lambda: f" {opts.toolbar()} ",
            enable_open_in_editor=False,
        )

    def attach(self, status: Callable[[], str], commands: Callable[[], list[str]]) -> None:
        self.options.toolbar = status
        self.options.commands = commands

    def _bindings(self) -> Any:
        from prompt_toolkit.application import get_app
        from prompt_toolkit.key_binding import KeyBindings

        kb = KeyBindings()
        flip = self.options.multiline

        def send(event: Any) -> None:
            event.current_buffer.validate_and_handle()

        def newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        @kb.add("enter")
        def _enter(event: Any) -> None:
            text = event.current_buffer.text
            command = text.startswith("/") and "\n" not in text  # commands are one line
            if fence_open(text) or (flip and not command):
                newline(event)
            else:
                send(event)

        @kb.add("escape", "enter")  # Alt+Enter: terminals send Esc then Enter
        def _alt_enter(event: Any) -> None:
            (send if flip else newline)(event)

        kb.add("c-j")(newline)

        from prompt_toolkit.filters import Condition

        empty = Condition(lambda: not get_app().current_buffer.text)
        # Left/Right at an empty prompt: the last reply's alternatives (/alt), kept after /regen.
        for key, step in (("left", "-"), ("right", "+")):
            kb.add(key, filter=empty)(
                lambda event, step=step: event.app.exit(result=f"/alt {step}")
            )
        return kb

    def read_message(self, default: str = "") -> str | None:
        """The next message; None when the user leaves (Ctrl-D). Keys typed while airochat
        was busy start the line, unsent."""
        typed = self._typeahead.release()
        if typed and not default:
            default = typed
            if not self._told_typeahead:
                self.notice("(what you typed during the reply is on the line: Enter sends it)")
                self._told_typeahead = True
        self._tell_history()
        while True:
            try:
                text = unfence(str(self._session.prompt(">>> ", default=default)))
            except KeyboardInterrupt:
                default = ""
                self.notice("(Ctrl-C clears the line; Ctrl-D or /exit leaves)")
                continue
            except EOFError:
                return None
            self._typeahead.hold()
            return text

    def _tell_history(self) -> None:
        if self._history is not None and self._history.problem and not self._told_history:
            self.notice(self._history.problem)
            self._told_history = True

    def close(self) -> None:
        """Give the terminal back as it was."""
        self._typeahead.release()

    def edit_text(self, text: str) -> str | None:
        """Edit `text` in $VISUAL/$EDITOR when set, else inline at the prompt. None (cancel)
        when the editor exits non-zero (vim's :cq) or leaves the text empty."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            return self.read_message(default=text)
        with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False) as fh:
            fh.write(text)
            path = fh.name
        self._typeahead.release()
        try:
            return _run_editor(editor, path)
        finally:
            self._typeahead.hold()
            os.unlink(path)

    # -- output ----------------------------------------------------------------------------------

    def stream(self, text: str) -> None:
        if not text:
            return
        if self._view is None:
            self._view = self._new_view()
        self._view.update(text)

    def end_reply(self, summary: str, cut: bool = False) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
        if cut:
            self.console.print(Text("[reply stopped]", style="yellow"))
        if summary:
            self.notice(summary)

    # What is shown, noticed or said wrong may quote a reply, a file or a server: its control
    # characters are made visible on a terminal (Text is never read as rich markup).

    def show(self, text: str) -> None:
        self.console.print(Text(on_screen(self.console, text)))

    def show_terms(self, rows: list[tuple[str, str]]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column()  # wraps within its column: a hanging indent
        for term, text in rows:
            grid.add_row(Text(on_screen(self.console, term)), Text(on_screen(self.console, text)))
        self.console.print(grid)

    def notice(self, text: str) -> None:
        """A line of airochat's: too long for the terminal, it breaks between its ` · ` parts
        (a banner wrapped by words left a dangling `·`)."""
        shown = between_parts(on_screen(self.console, text), self.console.width)
        self.console.print(Text(shown, style="dim"))

    def error(self, text: str) -> None:
        self.console.print(Text(on_screen(self.console, text), style="bold red"))


def between_parts(text: str, width: int, sep: str = " · ") -> str:
    """`text` with a line break before each `sep`-joined part that would pass `width`, and
    the `sep` there dropped; a part longer than the width is left to wrap by words."""
    if "\n" in text or cell_len(text) <= width:
        return text
    lines = [""]
    for part in text.split(sep):
        joined = f"{lines[-1]}{sep}{part}" if lines[-1] else part
        if lines[-1] and cell_len(joined) > width:
            lines.append(part)
        else:
            lines[-1] = joined
    return "\n".join(lines)


def _run_editor(editor: str, path: str) -> str | None:
    try:
        argv = [*shlex.split(editor), path]
    except ValueError as exc:
        raise UsageError(f"cannot parse the editor command {editor!r}: {exc}") from None
    try:
        proc = subprocess.run(argv, check=False)
    except OSError as exc:
        raise UsageError(
            f"cannot start the editor {argv[0]!r} ({exc.strerror}); check $VISUAL/$EDITOR"
        ) from None
    if proc.returncode != 0:
        return None
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return text.rstrip("\n") or None
