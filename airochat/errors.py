"""Errors a user can act on, and the exit codes they map to at the CLI edge."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


class AirochatError(Exception):
    """An error with a one-line message that tells the user what to do next."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(AirochatError):
    """Bad option values or arguments."""

    exit_code = ExitCode.USAGE


class InputFileError(AirochatError):
    """A file named on the command line cannot be used: missing, unreadable, wrong content.
    Exit 1 (an error), where 2 is kept for a command line that is itself wrong."""


class ModelNotFoundError(AirochatError):
    """The MODEL argument names nothing we can load."""


class ModelLoadError(AirochatError):
    """The file exists but is not a model llama.cpp can load."""


class ConfigError(AirochatError):
    """A config file is unreadable or has bad values."""


class ContextOverflowError(AirochatError):
    """A prompt does not fit in the model's context window."""


class LoadInterrupted(AirochatError):
    """Ctrl-C while llama.cpp was loading a model: the process must end (the load cannot be
    undone from Python), with status 130."""

    exit_code = ExitCode.INTERRUPTED


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like KeyboardInterrupt (no `except Exception` in a library
    or in the REPL loop swallows it) through the `finally` blocks that save the chat and stop
    children; the process ends with 128 + the signal."""

    def __init__(self, signum: int) -> None:
        # The same numbers on every POSIX system; the signals themselves are handled only in
        # adapters/process_signals.py.
        name = {1: "SIGHUP", 2: "SIGINT", 15: "SIGTERM"}.get(signum, f"signal {signum}")
        super().__init__(f"stopped by {name}")
        self.signum = signum
        self.exit_code = 128 + signum
