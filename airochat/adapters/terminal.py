"""The terminal: prompt_toolkit for input (key bindings, paste), rich for what we print.

Input and output objects can be passed in, so tests can drive the real REPL code on a pipe;
pseudo-terminal tests cover the key bindings end to end.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from rich.console import Console
from rich.text import Text


def make_console(file: IO[str] | None = None, stderr: bool = False) -> Console:
    # rich honours NO_COLOR and drops styling when the stream is not a terminal.
    return Console(file=file, stderr=stderr, highlight=False, soft_wrap=True)


class TerminalIO:
    """Reads messages with prompt_toolkit, writes replies and notices with rich."""

    def __init__(
        self,
        console: Console | None = None,
        pt_input: Any = None,
        pt_output: Any = None,
        toolbar: Any = None,
    ) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.key_binding import KeyBindings

        self.console = console or make_console()
        bindings = KeyBindings()

        @bindings.add("enter")
        def _send(event: Any) -> None:
            event.current_buffer.validate_and_handle()

        @bindings.add("escape", "enter")  # Alt+Enter: terminals send Esc then Enter
        @bindings.add("c-j")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        self._session: Any = PromptSession(
            multiline=True,  # pasted newlines stay in the buffer; Enter is bound to send above
            key_bindings=bindings,
            input=pt_input,
            output=pt_output,
            prompt_continuation=lambda width, _n, _soft: "." * (width - 1) + " ",
            bottom_toolbar=toolbar,
            enable_open_in_editor=False,
        )
        self._mid_line = False

    def read_message(self) -> str | None:
        """The next message; None when the user leaves (Ctrl-D)."""
        while True:
            try:
                return str(self._session.prompt(">>> "))
            except KeyboardInterrupt:
                self.notice("(Ctrl-C clears the line; Ctrl-D or /exit leaves)")
            except EOFError:
                return None

    # -- output ----------------------------------------------------------------------------------

    def stream(self, text: str) -> None:
        if text:
            self.console.file.write(text)
            self.console.file.flush()
            self._mid_line = not text.endswith("\n")

    def end_reply(self, summary: str, cut: bool = False) -> None:
        if self._mid_line:
            self.console.file.write("\n")
            self._mid_line = False
        if cut:
            self.console.print(Text("[reply stopped]", style="yellow"))
        if summary:
            self.console.print(Text(summary, style="dim"))

    def show(self, text: str) -> None:
        self.console.print(Text(text))

    def notice(self, text: str) -> None:
        self.console.print(Text(text, style="dim"))

    def error(self, text: str) -> None:
        self.console.print(Text(text, style="bold red"))


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
