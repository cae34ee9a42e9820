"""The CLI's edge: settings from options, errors to exit codes, one-line messages on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from airochat.errors import (
    AirochatError,
    ConfigError,
    ExitCode,
    LoadInterrupted,
    Terminated,
    UsageError,
)

if TYPE_CHECKING:
    from airochat.domain.cancel import CancelToken
    from airochat.domain.config import Settings
    from airochat.services.resolve import Fetch


def err(message: str) -> None:
    _say(f"airochat: error: {message}", "red")


def note(message: str) -> None:
    _say(f"airochat: {message}", "dim")


def _say(line: str, style: str) -> None:
    """One line on stderr. It may quote a server's error body, a log line or a file name:
    its control characters are always made visible, and it is never read as rich markup."""
    from rich.text import Text

    from airochat.adapters.terminal import make_console
    from airochat.domain.visible import visible

    make_console(stderr=True).print(Text(visible(line), style=style))


@contextmanager
def errors_to_exit(debug: bool) -> Iterator[CancelToken]:
    """One command's run: its signals (`command_signals`: Ctrl-C, SIGTERM and SIGHUP stop a
    reply through the token given to the chat, else unwind through the `finally` blocks that
    save the chat and stop children), and its errors: AirochatErrors become one line on stderr
    and their exit code, Ctrl-C 130, SIGTERM/SIGHUP 128 + the signal."""
    from airochat.adapters.process_signals import command_signals
    from airochat.domain.cancel import CancelToken

    cancel = CancelToken()
    try:
        with command_signals(cancel):
            yield cancel
    except (LoadInterrupted, Terminated) as exc:
        # A model load still runs in a worker thread and cannot be undone: end at once.
        if isinstance(exc, Terminated):
            note(str(exc))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(exc.exit_code))
    except AirochatError as exc:
        if debug:
            raise
        err(str(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def settings_from(**overrides: Any) -> Settings:
    """The shipped defaults, the user's config.toml, then these options (None: not given)."""
    from airochat.adapters import locations
    from airochat.domain.config import load_settings

    base = load_settings(
        locations.data_file("configs/default.toml"), locations.config_dir() / "config.toml"
    )
    try:
        return base.with_overrides(**overrides)
    except ConfigError as exc:  # a bad option value, not a bad file
        raise UsageError(f"bad option: {exc}") from None


def make_fetch(settings: Settings, yes: bool, interactive: bool) -> Fetch | None:
    """How a missing Hub model is fetched: at once with --yes, after asking in the REPL,
    not at all in scripts (the error then says to pull or pass --yes)."""
    if not yes and not interactive:
        return None
    from airochat.services.pull import HubRef, pull

    def confirm(question: str) -> bool:
        return bool(typer.confirm(question, default=False, err=True))

    def fetch(ref: HubRef) -> Any:
        return pull(ref, gpu=settings.gpu_layers != "0", confirm=None if yes else confirm).path

    return fetch
