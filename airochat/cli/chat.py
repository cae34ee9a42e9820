"""`airochat run` (the REPL) and `airochat ask` (one answer, for scripts). Their shared options
are declared once (`ChatOptions`, cli/options.py); each command builds a request, opens the chat
and hands it to the REPL or to one answer."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from airochat.cli.edge import errors_to_exit, note
from airochat.cli.help import AskCommand, command
from airochat.cli.options import ChatOptions, ModelArg, with_options
from airochat.cli.request import (
    chat_request,
    chat_settings,
    keeping_note,
    resumed_chat,
    server_url,
)
from airochat.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from airochat.domain.chat_library import ChatSummary
    from airochat.domain.config import Settings
    from airochat.services.launch import ReadyChat


def register(app: typer.Typer) -> None:
    command(app, run)
    command(app, ask, cls=AskCommand)


def _option(flag: str, help: str, metavar: str = "") -> Any:
    """A command's own option (metavar "" for a flag)."""
    return typer.Option(flag, help=help, metavar=metavar)


@with_options(ChatOptions)
def run(
    opts: ChatOptions,
    model: ModelArg = None,
    no_history: Annotated[
        bool, _option("--no-history", "every turn stands alone (system + message)")
    ] = False,
    multiline: Annotated[
        bool, _option("--multiline", "Enter adds a line, Alt+Enter sends")
    ] = False,
    no_input_history: Annotated[
        bool, _option("--no-input-history", "do not keep typed lines in a file")
    ] = False,
    plain_output: Annotated[
        bool, _option("--plain-output", "replies as plain text, not markdown")
    ] = False,
    no_stats: Annotated[bool, _option("--no-stats", "no stats line per reply")] = False,
    tools: Annotated[Path | None, _option("--tools", "tools.yaml for /plan", "FILE")] = None,
) -> None:
    """Chat interactively. Enter sends, Alt+Enter adds a line, /help lists commands."""
    with errors_to_exit(opts.debug) as cancel:
        if not sys.stdin.isatty():
            raise UsageError(
                "run is interactive and stdin is not a terminal; for scripts and pipes use "
                "`airochat ask MODEL [PROMPT]` (the prompt can come from stdin)"
            )
        from airochat.adapters.terminal import loading, make_console
        from airochat.services.launch import open_chat

        history = False if no_history else None
        settings = chat_settings(opts, history)
        if tools is not None:
            settings = replace(settings, tools=str(tools))
        remote = server_url(opts.where, settings)
        resumed = resumed_chat(opts, model)
        name = (
            model
            or (resumed.model_ref if resumed else None)
            or (None if remote else settings.model)
        )
        request = chat_request(
            opts, settings, name, cancel, interactive=True, history=history, resumed=resumed
        )
        console = make_console()
        loading(console, name or remote)
        ready = open_chat(request)
        ready.notes += [n for n in [keeping_note(opts, settings)] if n]
        try:
            markdown = settings.markdown and not plain_output
            keep_input = settings.input_history and not no_input_history
            stats = settings.show_stats and not no_stats
            _repl(ready, console, settings, markdown, multiline, keep_input, stats)
        finally:
            ready.close()


def _repl(
    ready: ReadyChat,
    console: Console,
    settings: Settings,
    markdown: bool,
    multiline: bool,
    keep_input: bool,
    stats: bool,
) -> None:
    from airochat.adapters import locations
    from airochat.adapters.reply_views import choose_view
    from airochat.adapters.terminal import InputOptions, TerminalIO
    from airochat.services.repl import Repl, recap

    chat = ready.chat
    options = InputOptions(
        multiline=multiline,
        history_file=locations.data_dir() / "input_history" if keep_input else None,
    )
    io = TerminalIO(console, options, view=lambda: choose_view(console, chat.scene, markdown))
    for line in ready.notes:
        io.notice(line)
    for line in recap(chat) if ready.kept.resumed else []:
        io.notice(line)
    io.notice(ready.header() + " · /help for commands, Ctrl-D to leave")
    Repl(ready.kept, io, stats, settings.tools).run()


@with_options(ChatOptions)
def ask(
    opts: ChatOptions,
    model: Annotated[
        str | None,
        typer.Argument(
            help="alias from models.txt, owner/repo[:QUANT], or a .gguf path (optional with "
            "--server)",
            metavar="MODEL",
            show_default=False,
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Argument(help="the message; read from stdin when piped", metavar="PROMPT")
    ] = None,
    context: Annotated[
        list[str] | None,
        _option("--context", "closed-context QA: a document (repeatable; - is stdin)", "FILE"),
    ] = None,
    meta: Annotated[
        list[str] | None, _option("--meta", "key=value for every context block", "KEY=VALUE")
    ] = None,
    no_guess: Annotated[
        bool, _option("--no-guess", "add: Don't make up answers if you don't know.")
    ] = False,
    plain: Annotated[bool, _option("--plain", "append PLAINFORMAT: code without prose")] = False,
    functions: Annotated[
        Path | None,
        _option("--functions", "YAML/JSON functions: the choice as JSON; a command: runs", "FILE"),
    ] = None,
    print_prompt: Annotated[
        bool, _option("--print-prompt", "print the exact prompt and exit")
    ] = False,
    as_json: Annotated[bool, _option("--json", "one JSON object on stdout")] = False,
    plan: Annotated[
        str | None, _option("--plan", "reWOO: the model plans, airochat runs the tools", "QUESTION")
    ] = None,
    tools: Annotated[
        Path | None, _option("--tools", "tools.yaml for --plan (built-ins always there)", "FILE")
    ] = None,
    dry_run: Annotated[
        bool, _option("--dry-run", "with --plan: show the parsed plan, run nothing")
    ] = False,
    max_steps: Annotated[
        int, _option("--max-steps", "with --plan: the most steps a plan may have", "N")
    ] = 10,
) -> None:
    """Answer one message and exit: for scripts and pipes. With --server, one argument is the
    message."""
    with errors_to_exit(opts.debug) as cancel:
        if plan is not None:
            from airochat.cli.plan import PlanArgs, ask_plan

            args = PlanArgs(model, plan, tools, dry_run, max_steps, print_prompt, as_json, prompt)
            ask_plan(opts, args, cancel)
            return
        from airochat.cli.ask_io import answer, read_stdin
        from airochat.services.launch import open_chat
        from airochat.services.messages import MessageSpec, build_message

        settings = chat_settings(opts)
        server = server_url(opts.where, settings)
        model, prompt, resumed = _what_to_ask(opts, settings, server, model, prompt)
        spec = MessageSpec(
            prompt=prompt,
            stdin=read_stdin(),
            contexts=context or [],
            meta=meta or [],
            no_guess=no_guess,
            plain=plain,
            functions=functions,
            allow_empty=opts.scene is not None,  # a scene's opening is a first turn of its own
            yes=opts.yes,
        )
        text = build_message(spec)
        request = chat_request(
            opts, settings, model, cancel, interactive=False, tokenizer_only=print_prompt,
            resumed=resumed,
        )  # fmt: skip
        ready = open_chat(request)
        try:
            for line in ready.notes:
                note(line)
            answer(ready.kept, text, spec, print_prompt, as_json)
        finally:
            ready.close()


def _what_to_ask(
    opts: ChatOptions, settings: Settings, server: str | None, model: str | None, prompt: str | None
) -> tuple[str | None, str | None, ChatSummary | None]:
    """MODEL, PROMPT and the kept chat resumed: the chat's model, else the default (as `run`)."""
    resuming = opts.resume_latest or opts.chat_id is not None
    model, prompt = _positionals(model, prompt, server, resuming)
    resumed = resumed_chat(opts, model)
    model = model or (resumed.model_ref if resumed else None)
    # -c/--chat with no chat to continue never falls back to the default model
    return model or (None if server or resuming else settings.model), prompt, resumed


def _positionals(
    model: str | None, prompt: str | None, server: str | None, resuming: bool = False
) -> tuple[str | None, str | None]:
    """(MODEL, PROMPT) from what was typed. With a server, one argument is the message (the
    server's model answers); MODEL `-` also leaves the choice to the server. Resuming a kept
    chat (-c, --chat), one argument is the message too (the chat's model answers). Otherwise
    a lone argument with spaces in it is the message (no model name has one), for the default
    model, as is a message on stdin with no argument."""
    if model == "-":
        return None, prompt
    if (server or resuming) and model is not None and prompt is None:
        return None, model
    if model is not None and prompt is None and " " in model.strip() and not Path(model).exists():
        return None, model  # a question, not a model name: the default model answers it
    return model, prompt
