"""The user's message for a turn: plain, closed-context QA, PLAINFORMAT, or function choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airochat.domain.closed_context import (
    Document,
    closed_context,
    document_from_path,
    parse_meta,
    plain_format,
)
from airochat.domain.functions import functions_prompt, load_functions
from airochat.errors import UsageError


@dataclass
class MessageSpec:
    prompt: str | None = None
    stdin: str | None = None
    contexts: Sequence[str] = ()
    meta: Sequence[str] = ()
    no_guess: bool = False
    plain: bool = False
    functions: Path | None = None
    allow_empty: bool = False
    yes: bool = False  # a chosen function's command runs without asking
    loaded_functions: dict[str, Any] = field(default_factory=dict)


def build_message(spec: MessageSpec) -> str:
    """Compose the message. stdin feeds `--context -` if asked, else it precedes the prompt."""
    stdin_is_context = "-" in spec.contexts
    if stdin_is_context and spec.contexts.count("-") > 1:
        raise UsageError("--context - (stdin) can be given once")
    piped = None if stdin_is_context else spec.stdin
    if piped and spec.prompt:
        text = f"{piped.rstrip()}\n\n{spec.prompt}"
    else:
        text = spec.prompt or piped or ""
    if not text.strip():
        if spec.allow_empty and not spec.contexts and spec.functions is None:
            return ""
        raise UsageError("no prompt: give one as an argument or on stdin")
    if spec.contexts:
        docs = [
            Document(text=spec.stdin or "", meta={"source": "stdin"})
            if c == "-"
            else document_from_path(Path(c))
            for c in spec.contexts
        ]
        text = closed_context(docs, text, parse_meta(spec.meta), spec.no_guess)
    elif spec.meta or spec.no_guess:
        raise UsageError("--meta and --no-guess go with --context")
    if spec.functions is not None:
        spec.loaded_functions = load_functions(spec.functions)
        text = functions_prompt(spec.loaded_functions, text)
    if spec.plain:
        text = plain_format(text)
    return text
