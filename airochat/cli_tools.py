"""Commands that inspect and measure: bench, info, templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from airochat.cli_common import errors_to_exit, open_session, settings_from
from airochat.cli_options import (
    CtxOpt,
    DebugOpt,
    GpuLayersOpt,
    ModelArg,
    ThreadsOpt,
    VerboseOpt,
)


def register(app: typer.Typer) -> None:
    app.command()(bench)
    app.command()(info)
    app.command()(templates)
    app.command()(convert)


def convert(
    source: Annotated[Path, typer.Argument(help="a legacy GGML llama file (GGJT v3 .bin)")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="default: the same name, .gguf")
    ] = None,
    ctx: Annotated[int | None, typer.Option("--ctx", help="context length (default 2048)")] = None,
    rope_scale: Annotated[
        float | None, typer.Option("--rope-scale", help="linear RoPE factor, e.g. 4")
    ] = None,
    gqa: Annotated[int | None, typer.Option("--gqa", help="GQA factor (read from shapes)")] = None,
    eps: Annotated[float | None, typer.Option("--eps", help="RMS norm eps (1e-6)")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="catalog alias supplying ctx/RoPE/template")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Convert a legacy GGML (GGJT v3) llama model to GGUF; quantized data copied as-is."""
    with errors_to_exit(debug):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        from airochat.adapters.terminal import make_console
        from airochat.errors import UsageError
        from airochat.services.convert import convert_file, options_for
        from airochat.services.models import load_catalog

        entry = load_catalog().get(model) if model else None
        if model and entry is None:
            raise UsageError(f"unknown catalog alias {model!r}")
        opts = options_for(entry, ctx, rope_scale, gqa, eps)
        err = make_console(stderr=True)
        with Progress(
            TextColumn("converting"), BarColumn(), DownloadColumn(), console=err, transient=True
        ) as bar:
            task = bar.add_task("convert", total=None)
            out = convert_file(
                source,
                output,
                opts,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        err.print(
            f"[dim]context {opts.ctx}, RoPE linear x{opts.rope_scale or 1:g}, "
            f"template {opts.template}[/dim]",
            highlight=False,
        )
        typer.echo(str(out))


def bench(
    model: ModelArg = None,
    turns: Annotated[int, typer.Option("--turns", min=1, help="scripted chat turns")] = 6,
    reply_tokens: Annotated[
        int, typer.Option("--reply-tokens", min=2, help="reply length cap per turn")
    ] = 64,
    threads: ThreadsOpt = None,
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="fixed for repeatable runs")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of time to first token vs history")
    ] = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure speed on the chat path (decode, prompt, TTFT per turn) against bare llama.cpp."""
    with errors_to_exit(debug):
        from airochat.adapters.terminal import make_console
        from airochat.services.bench import run_bench

        settings = settings_from(threads=threads, ctx=ctx, seed=seed, gpu_layers=gpu_layers)
        err = make_console(stderr=True)
        name = model or settings.model
        session, _plan = open_session(settings, name, None, verbose)
        result = run_bench(
            session,
            turns,
            reply_tokens,
            plot=plot is not None,
            progress=lambda msg: err.print(f"[dim]{msg}[/dim]"),
        ).to_dict()
        if plot is not None:
            from airochat.adapters.plot import write_ttft_plot

            write_ttft_plot(result, plot)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            from airochat.adapters.tables import print_bench

            print_bench(result, make_console())


def info(
    model: Annotated[str, typer.Argument(help="alias from models.txt, or a path to a .gguf")],
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    debug: DebugOpt = False,
) -> None:
    """Show a model's metadata, template, context, RoPE and memory estimate."""
    with errors_to_exit(debug):
        from airochat.services.info import model_info

        data = model_info(settings_from(ctx=ctx, gpu_layers=gpu_layers), model)
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
