"""What `ask` reads and writes: the message from stdin, the reply (streamed, or one JSON
object), a function call, the exact prompt; the chat kept after the turn."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from airochat.cli.edge import note
from airochat.domain.visible import visible
from airochat.errors import AirochatError, ExitCode, InputFileError

if TYPE_CHECKING:
    from airochat.domain.events import ChatEvent, Done
    from airochat.services.chat import Chat
    from airochat.services.kept_chat import KeptChat
    from airochat.services.messages import MessageSpec

MAX_STDIN_BYTES = 64 << 20


def read_stdin() -> str | None:
    """What a pipe brings, when stdin is one: bounded (a message past the limit could never
    fit a context), and UTF-8 or an error that says so."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise InputFileError("stdin brings more than 64 MiB: far more than any context holds")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"stdin is not UTF-8 text (byte {exc.start})") from None


def answer(kept: KeptChat, text: str, spec: MessageSpec, print_prompt: bool, as_json: bool) -> None:
    """One turn of `ask`, kept (with the model's cache) where the chat is kept."""
    chat = kept.chat
    if print_prompt:
        _print_prompt(chat, text, as_json)
        return
    try:
        if spec.functions is not None:
            _answer_function(chat, text, spec.loaded_functions, as_json, spec.yes)
        else:
            _answer(chat, chat.send(text), as_json)
    finally:
        kept.save()  # a script is told when its chat could not be kept: an error, exit 1
        for line in kept.save_cache():
            note(line)


def _print_prompt(chat: Chat, text: str, as_json: bool) -> None:
    preview = chat.preview(text)
    if as_json:
        out = {"prompt": preview.prompt, "stop": preview.stops, "template": preview.template}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(_shown(preview.prompt) + "\n")


def _shown(text: str) -> str:
    """A reply as stdout takes it: exact on a pipe (the user's data), its control characters
    made visible on a terminal (a reply never controls it)."""
    return visible(text) if sys.stdout.isatty() else text


def _answer(chat: Chat, events: Iterator[ChatEvent], as_json: bool) -> None:
    from airochat.domain.events import Done, TextChunk

    done: Done | None = None
    for event in events:
        if isinstance(event, TextChunk):
            if not as_json:
                sys.stdout.write(_shown(event.text))
                sys.stdout.flush()
        elif isinstance(event, Done):
            done = event
    assert done is not None
    if as_json:
        out = {
            "text": done.text,
            "model": chat.model_name,
            "template": chat.template.name,
            "prompt_tokens": done.prompt_tokens,
            "prompt_eval_tokens": done.prompt_eval_tokens,
            "completion_tokens": done.generated,
            "ttft_s": round(done.ttft_s, 4),
            "tokens_per_s": round(done.tokens_per_s, 2),
            "finish_reason": done.finish_reason,
            "draft_tokens": done.drafted,
            "draft_accepted": done.accepted,
        }
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write("\n")
    _end(done)


def _answer_function(
    chat: Chat, text: str, functions: dict[str, object], as_json: bool, yes: bool
) -> None:
    from airochat.cli.plan import run_function
    from airochat.domain.events import Done
    from airochat.domain.functions import parse_call

    done = next(e for e in chat.send(text) if isinstance(e, Done))
    _end(done)  # a reply cut by Ctrl-C is not a choice to parse
    call = parse_call(done.text, functions)
    if not as_json:
        typer.echo(json.dumps(call, ensure_ascii=False, indent=2))
    ran = run_function(call, functions, yes, show=not as_json)
    if as_json:
        out = {"call": call, "text": done.text, "finish_reason": done.finish_reason}
        if ran is not None:
            out["run"] = ran.to_json()
        typer.echo(json.dumps(out, ensure_ascii=False))
    if ran is not None and ran.error is not None:
        raise AirochatError(f"{call['function']}: {ran.error}")


def _end(done: Done) -> None:
    if done.finish_reason == "interrupted":
        raise typer.Exit(int(ExitCode.INTERRUPTED))
