"""`airochat convert`: legacy GGML (GGJT v3) llama files to GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airochat.cli.edge import errors_to_exit
from airochat.cli.help import command
from airochat.cli.options import DebugOpt


def register(app: typer.Typer) -> None:
    command(app, convert)


def convert(
    source: Annotated[
        Path, typer.Argument(help="a legacy GGML llama file (GGJT v3 .bin)", metavar="FILE")
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="default: the same name, .gguf", metavar="FILE"),
    ] = None,
    ctx: Annotated[
        int | None, typer.Option("--ctx", help="context length (default 2048)", metavar="N")
    ] = None,
    rope_scale: Annotated[
        float | None, typer.Option("--rope-scale", help="linear RoPE factor, e.g. 4", metavar="F")
    ] = None,
    gqa: Annotated[
        int | None, typer.Option("--gqa", help="GQA factor (read from shapes)", metavar="N")
    ] = None,
    eps: Annotated[
        float | None, typer.Option("--eps", help="RMS norm eps (1e-6)", metavar="F")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="catalog alias supplying ctx/RoPE/template", metavar="ALIAS"),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Convert a legacy GGML (GGJT v3) llama model to GGUF; quantized data copied as-is."""
    with errors_to_exit(debug):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        from airochat.adapters.terminal import make_console
        from airochat.errors import UsageError
        from airochat.services.convert import convert_file, options_for
        from airochat.services.resolve import load_catalog

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
