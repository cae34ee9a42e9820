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


class ModelNotFoundError(AirochatError):
    """The MODEL argument names nothing we can load."""


class ModelLoadError(AirochatError):
    """The file exists but is not a model llama.cpp can load."""


class ConfigError(AirochatError):
    """A config file is unreadable or has bad values."""


class ContextOverflowError(AirochatError):
    """A prompt does not fit in the model's context window."""


class GenerationAborted(AirochatError):
    """Generation was stopped by the user (Ctrl-C)."""

    exit_code = ExitCode.INTERRUPTED
