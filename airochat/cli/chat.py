"""`airochat run` (the REPL) and `airochat ask` (one answer, for scripts)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from airochat.cli.edge import errors_to_exit, make_fetch, note, settings_from
from airochat.cli.options import (
    ApiKeyOpt,
    CtxOpt,
    DebugOpt,
    EngineOpt,
    GpuLayersOpt,
    KvTypeOpt,
    LlamaServerOpt,
    MaxTokensOpt,
    MlockOpt,
    ModelArg,
    NoMmapOpt,
    NoSessionCacheOpt,
    RepeatOpt,
    RopeBaseOpt,
    RopeScaleOpt,
    RpcOpt,
    SceneOpt,
    SeedOpt,
    ServerKindOpt,
    ServerOpt,
    SystemOpt,
    TemperatureOpt,
    TemplateOpt,
    ThreadsOpt,
    TopKOpt,
    TopPOpt,
    VerboseOpt,
    YesOpt,
)
from airochat.errors import ExitCode, InputFileError, UsageError

if TYPE_CHECKING:
    from airochat.domain.config import Settings
    from airochat.domain.engine_spec import EngineSpec
    from airochat.domain.events import ChatEvent
    from airochat.services.chat import Chat
    from airochat.services.launch import ChatRequest
    from airochat.services.messages import MessageSpec


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(ask)


def _settings(
    template: str | None,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    repeat_penalty: float | None,
    max_tokens: int | None,
    seed: int | None,
    ctx: int | None,
    threads: int | None,
    gpu_layers: str | None,
    rope_scale: float | None,
    rope_freq_base: float | None,
    mlock: bool,
    no_mmap: bool,
    kv_type: str | None,
    no_session_cache: bool,
    history: bool | None = None,
    engine: str | None = None,
) -> Settings:
    """Settings from the options `run` and `ask` share (None: not given on the command line)."""
    return settings_from(
        template=template,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repeat_penalty=repeat_penalty,
        max_tokens=max_tokens,
        seed=seed,
        ctx=ctx,
        threads=threads,
        gpu_layers=gpu_layers,
        rope_scale=rope_scale,
        rope_freq_base=rope_freq_base,
        mlock=True if mlock else None,
        mmap=False if no_mmap else None,
        kv_type=kv_type,
        session_cache=False if no_session_cache else None,
        history=history,
        engine=engine,
    )


@dataclass(frozen=True)
class Route:
    """Where the model runs, from --server / --engine / --rpc and the config."""

    server: str | None = None
    kind: str | None = None
    api_key: str | None = None
    llama_server: str | None = None
    rpc: str | None = None
    server_owned: tuple[str, ...] = ()

    def spec(self, settings: Settings, model: str | None) -> EngineSpec:
        """Where the model runs: a running server (by URL), a llama-server started here (also
        for --rpc), or this process."""
        from airochat.domain.engine_spec import (
            LocalEngine,
            RunningServer,
            ServerKind,
            StartedServer,
        )

        server = self.server or settings.server or None
        kind = (self.kind or "").lower()
        if kind not in ("", "llama", "openai"):
            raise UsageError(f"--server-kind is llama or openai, not {self.kind!r}")
        rpc = tuple(h.strip() for h in (self.rpc or "").split(",") if h.strip())
        if server and rpc:
            raise UsageError("--rpc starts a llama-server here; it does not go with --server")
        if server:
            kinds: dict[str, ServerKind] = {"": "", "llama": "llama", "openai": "openai"}
            return RunningServer(server, model, kinds[kind], self.api_key, self.server_owned)
        if rpc or settings.engine == "llama-server":
            return StartedServer(model, self.llama_server, rpc)
        return LocalEngine(model)


def owned(**flags: object) -> tuple[str, ...]:
    """The options given that a running server decides for itself."""
    return tuple(f"--{k.replace('_', '-')}" for k, v in flags.items() if v not in (None, False))


def _given(**options: object) -> dict[str, object]:
    """The chat settings the user typed on this command line (they win over a session's)."""
    return {k: v for k, v in options.items() if v is not None}


def _request(
    settings: Settings,
    model: str | None,
    system: str | None,
    scene: Path | None,
    verbose: bool,
    yes: bool,
    interactive: bool,
    session: Path | None = None,
    tokenizer_only: bool = False,
    given: dict[str, object] | None = None,
    route: Route | None = None,
) -> ChatRequest:
    from airochat.services.launch import ChatRequest
    from airochat.services.roleplay import load_scene_file

    return ChatRequest(
        engine=(route or Route()).spec(settings, model),
        progress=note,
        settings=settings,
        system=system,
        scene=load_scene_file(scene) if scene is not None else None,
        session=session,
        verbose=verbose,
        fetch=None if tokenizer_only else make_fetch(settings, yes, interactive),
        tokenizer_only=tokenizer_only,
        given=given or {},
        lock_wait_s=0.0 if interactive else 10.0,  # a script waits its turn; a person is told
    )


def run(
    model: ModelArg = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    repeat_penalty: RepeatOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    rope_scale: RopeScaleOpt = None,
    rope_freq_base: RopeBaseOpt = None,
    mlock: MlockOpt = False,
    no_mmap: NoMmapOpt = False,
    kv_type: KvTypeOpt = None,
    no_session_cache: NoSessionCacheOpt = False,
    no_history: Annotated[
        bool,
        typer.Option("--no-history", help="every turn stands alone (system + message)", metavar=""),
    ] = False,
    multiline: Annotated[
        bool, typer.Option("--multiline", help="Enter adds a line, Alt+Enter sends", metavar="")
    ] = False,
    no_input_history: Annotated[
        bool,
        typer.Option("--no-input-history", help="do not keep typed lines in a file", metavar=""),
    ] = False,
    plain_output: Annotated[
        bool, typer.Option("--plain-output", help="replies as plain text, not markdown", metavar="")
    ] = False,
    no_stats: Annotated[
        bool, typer.Option("--no-stats", help="no stats line per reply", metavar="")
    ] = False,
    session: Annotated[
        Path | None,
        typer.Option(
            "--session", help="load this chat file if present; save after each turn", metavar="FILE"
        ),
    ] = None,
    server: ServerOpt = None,
    server_kind: ServerKindOpt = None,
    api_key: ApiKeyOpt = None,
    engine: EngineOpt = None,
    llama_server: LlamaServerOpt = None,
    rpc: RpcOpt = None,
    yes: YesOpt = False,
    scene: SceneOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Chat interactively. Enter sends, Alt+Enter adds a line, /help lists commands."""
    with errors_to_exit(debug):
        if not sys.stdin.isatty():
            raise UsageError(
                "run is interactive and stdin is not a terminal; for scripts and pipes use "
                "`airochat ask MODEL [PROMPT]` (the prompt can come from stdin)"
            )
        settings = _settings(
            template, temperature, top_p, top_k, repeat_penalty, max_tokens, seed, ctx,
            threads, gpu_layers, rope_scale, rope_freq_base, mlock, no_mmap, kv_type,
            no_session_cache, history=False if no_history else None, engine=engine,
        )  # fmt: skip
        route = Route(
            server, server_kind, api_key, llama_server, rpc,
            owned(ctx=ctx, gpu_layers=gpu_layers, threads=threads, rope_scale=rope_scale,
                  rope_freq_base=rope_freq_base, kv_type=kv_type, mlock=mlock, no_mmap=no_mmap),
        )  # fmt: skip
        from airochat.adapters import locations
        from airochat.adapters.reply_views import choose_view
        from airochat.adapters.terminal import InputOptions, TerminalIO, make_console
        from airochat.services.launch import open_chat
        from airochat.services.repl import Repl

        keep_input = settings.input_history and not no_input_history
        options = InputOptions(
            multiline=multiline,
            history_file=locations.data_dir() / "input_history" if keep_input else None,
        )
        console = make_console()
        markdown = settings.markdown and not plain_output
        given = _given(
            temperature=temperature, top_p=top_p, top_k=top_k, repeat_penalty=repeat_penalty,
            max_tokens=max_tokens, seed=seed, system=system, template=template,
            history=False if no_history else None,
        )  # fmt: skip
        remote = server or settings.server
        name = model or (None if remote else settings.model)
        request = _request(
            settings, name, system, scene, verbose, yes, True, session, given=given, route=route
        )
        console.print(f"[dim]Loading {name or remote} ...[/dim]", highlight=False)
        ready = open_chat(request)
        chat = ready.chat
        io = TerminalIO(console, options, view=lambda: choose_view(console, chat.scene, markdown))
        for line in ready.notes:
            io.notice(line)
        io.notice(ready.header() + " · /help for commands, Ctrl-D to leave")
        try:
            stats = settings.show_stats and not no_stats
            Repl(chat, io, session, stats, ready.cache_max_bytes).run()
        finally:
            ready.close()


def ask(
    model: Annotated[
        str,
        typer.Argument(
            help="alias from models.txt, owner/repo[:QUANT], or a .gguf path", metavar="MODEL"
        ),
    ],
    prompt: Annotated[
        str | None, typer.Argument(help="the message; read from stdin when piped", metavar="PROMPT")
    ] = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    repeat_penalty: RepeatOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    rope_scale: RopeScaleOpt = None,
    rope_freq_base: RopeBaseOpt = None,
    mlock: MlockOpt = False,
    no_mmap: NoMmapOpt = False,
    kv_type: KvTypeOpt = None,
    no_session_cache: NoSessionCacheOpt = False,
    context: Annotated[
        list[str] | None,
        typer.Option(
            "--context",
            help="closed-context QA: a document (repeatable; - is stdin)",
            metavar="FILE",
        ),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="key=value for every context block", metavar="KEY=VALUE"),
    ] = None,
    no_guess: Annotated[
        bool,
        typer.Option(
            "--no-guess", help="add: Don't make up answers if you don't know.", metavar=""
        ),
    ] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="append PLAINFORMAT: code without prose", metavar="")
    ] = False,
    functions: Annotated[
        Path | None,
        typer.Option(
            "--functions",
            help="YAML/JSON functions: print the model's choice as JSON",
            metavar="FILE",
        ),
    ] = None,
    print_prompt: Annotated[
        bool, typer.Option("--print-prompt", help="print the exact prompt and exit", metavar="")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object on stdout", metavar="")
    ] = False,
    session: Annotated[
        Path | None,
        typer.Option(
            "--session",
            help="continue this chat file (created if absent) and save it back",
            metavar="FILE",
        ),
    ] = None,
    server: ServerOpt = None,
    server_kind: ServerKindOpt = None,
    api_key: ApiKeyOpt = None,
    engine: EngineOpt = None,
    llama_server: LlamaServerOpt = None,
    rpc: RpcOpt = None,
    yes: YesOpt = False,
    scene: SceneOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Answer one message and exit: for scripts and pipes."""
    with errors_to_exit(debug):
        settings = _settings(
            template, temperature, top_p, top_k, repeat_penalty, max_tokens, seed, ctx,
            threads, gpu_layers, rope_scale, rope_freq_base, mlock, no_mmap, kv_type,
            no_session_cache, engine=engine,
        )  # fmt: skip
        route = Route(
            server, server_kind, api_key, llama_server, rpc,
            owned(ctx=ctx, gpu_layers=gpu_layers, threads=threads, rope_scale=rope_scale,
                  rope_freq_base=rope_freq_base, kv_type=kv_type, mlock=mlock, no_mmap=no_mmap),
        )  # fmt: skip
        from airochat.services.messages import MessageSpec, build_message

        stdin = _read_stdin()
        spec = MessageSpec(
            prompt=prompt,
            stdin=stdin,
            contexts=context or [],
            meta=meta or [],
            no_guess=no_guess,
            plain=plain,
            functions=functions,
            allow_empty=scene is not None,  # a scene's opening is a first turn of its own
        )
        text = build_message(spec)
        given = _given(
            temperature=temperature, top_p=top_p, top_k=top_k, repeat_penalty=repeat_penalty,
            max_tokens=max_tokens, seed=seed, system=system, template=template,
        )  # fmt: skip
        request = _request(
            settings, None if model == "-" else model, system, scene, verbose, yes, False,
            session, tokenizer_only=print_prompt, given=given, route=route,
        )  # fmt: skip
        from airochat.services.launch import open_chat

        ready = open_chat(request)
        try:
            for line in ready.notes:
                note(line)
            _ask(ready.chat, text, spec, print_prompt, as_json, session, ready.cache_max_bytes)
        finally:
            ready.close()


MAX_STDIN_BYTES = 64 << 20


def _read_stdin() -> str | None:
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


def _ask(
    chat: Chat,
    text: str,
    spec: MessageSpec,
    print_prompt: bool,
    as_json: bool,
    session: Path | None,
    cache_max_bytes: int | None,
) -> None:
    from airochat.services import session_cache, session_file

    if print_prompt:
        _print_prompt(chat, text, as_json)
        return
    try:
        if spec.functions is not None:
            _answer_function(chat, text, spec.loaded_functions, as_json)
        else:
            _answer(chat, chat.send(text), as_json)
    finally:
        if session is not None and chat.started:
            session_file.save(chat, session)
            if cache_max_bytes is not None:
                said = session_cache.save(chat, session, cache_max_bytes)
                if said:
                    note(said)


def _print_prompt(chat: Chat, text: str, as_json: bool) -> None:
    preview = chat.preview(text)
    if as_json:
        out = {"prompt": preview.prompt, "stop": preview.stops, "template": preview.template}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(preview.prompt + "\n")


def _answer(chat: Chat, events: Iterator[ChatEvent], as_json: bool) -> None:
    from airochat.domain.events import Done, TextChunk

    done: Done | None = None
    for event in events:
        if isinstance(event, TextChunk):
            if not as_json:
                sys.stdout.write(event.text)
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
        }
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write("\n")
    if done.finish_reason == "interrupted":
        raise typer.Exit(int(ExitCode.INTERRUPTED))


def _answer_function(chat: Chat, text: str, functions: dict[str, object], as_json: bool) -> None:
    from airochat.domain.events import Done
    from airochat.domain.functions import parse_call

    done = next(e for e in chat.send(text) if isinstance(e, Done))
    call = parse_call(done.text, functions)
    if as_json:
        out = {"call": call, "text": done.text, "finish_reason": done.finish_reason}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo(json.dumps(call, ensure_ascii=False, indent=2))
