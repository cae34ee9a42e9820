"""Commands that inspect and measure: info, bench, templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from airochat.cli.edge import errors_to_exit, note, settings_from
from airochat.cli.options import (
    ApiKeyOpt,
    CtxOpt,
    DebugOpt,
    EngineOpt,
    GpuLayersOpt,
    KvTypeOpt,
    LlamaServerOpt,
    ModelArg,
    RpcOpt,
    ServerKindOpt,
    ServerOpt,
    TemperatureOpt,
    ThreadsOpt,
    TopKOpt,
    VerboseOpt,
)


def register(app: typer.Typer) -> None:
    app.command()(bench)
    app.command()(info)
    app.command()(templates)


def bench(
    model: ModelArg = None,
    turns: Annotated[
        int, typer.Option("--turns", min=1, help="scripted chat turns", metavar="N")
    ] = 6,
    reply_tokens: Annotated[
        int, typer.Option("--reply-tokens", min=2, help="reply length cap per turn", metavar="N")
    ] = 64,
    threads: ThreadsOpt = None,
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    temperature: TemperatureOpt = None,
    top_k: TopKOpt = None,
    seed: Annotated[
        int, typer.Option("--seed", help="fixed for repeatable runs", metavar="N")
    ] = 42,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object on stdout", metavar="")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG of time to first token vs history", metavar="FILE.png"),
    ] = None,
    server: ServerOpt = None,
    server_kind: ServerKindOpt = None,
    api_key: ApiKeyOpt = None,
    engine: EngineOpt = None,
    llama_server: LlamaServerOpt = None,
    rpc: RpcOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure speed on the chat path (decode, prompt, TTFT per turn) against the engine's
    own completion API (bare llama-cpp-python, or llama-server's /completion)."""
    with errors_to_exit(debug):
        from airochat.adapters.terminal import make_console
        from airochat.cli.chat import Route, owned
        from airochat.services.bench import run_bench
        from airochat.services.launch import ChatRequest, open_chat

        settings = settings_from(
            threads=threads, ctx=ctx, seed=seed, gpu_layers=gpu_layers, kv_type=kv_type,
            engine=engine, temperature=temperature, top_k=top_k,
        )  # fmt: skip
        err = make_console(stderr=True)
        flags = owned(ctx=ctx, gpu_layers=gpu_layers, threads=threads, kv_type=kv_type)
        name = model or (None if server or settings.server else settings.model)
        spec = Route(server, server_kind, api_key, llama_server, rpc, flags).spec(settings, name)
        request = ChatRequest(spec, settings, verbose=verbose, progress=note)
        ready = open_chat(request)
        try:
            for line in ready.notes:
                note(line)
            result = run_bench(
                ready.chat,
                turns,
                reply_tokens,
                plot=plot is not None,
                progress=lambda msg: err.print(f"[dim]{msg}[/dim]"),
            ).to_dict()
        finally:
            ready.close()
        if plot is not None:
            from airochat.adapters.plot import write_ttft_plot

            write_ttft_plot(result, plot)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            from airochat.adapters.tables import print_bench

            print_bench(result, make_console())


def info(
    model: Annotated[
        str,
        typer.Argument(
            help="alias from models.txt, owner/repo[:QUANT], or a .gguf path", metavar="MODEL"
        ),
    ],
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object on stdout", metavar="")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Show a model's metadata, template, context, RoPE and memory estimate."""
    with errors_to_exit(debug):
        from airochat.services.info import model_info

        data = model_info(settings_from(ctx=ctx, gpu_layers=gpu_layers, kv_type=kv_type), model)
        if as_json:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            from airochat.adapters.tables import print_info
            from airochat.adapters.terminal import make_console

            print_info(data, make_console())


def templates() -> None:
    """List the prompt templates, each with a one-line example."""
    from airochat.domain.templates import TEMPLATES

    for tpl in TEMPLATES.values():
        typer.echo(f"{tpl.name:<14} {tpl.summary}")
        typer.echo(f"{'':<14} {tpl.example()}")
    typer.echo(f"{'gguf':<14} the model's own tokenizer.chat_template, rendered in a sandbox")
