"""Commands for models on the Hub and in the cache: pull, models, rm."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from airochat.cli.edge import errors_to_exit, settings_from
from airochat.cli.help import command
from airochat.cli.options import DebugOpt, GpuLayersOpt

if TYPE_CHECKING:
    from airochat.services.pull import HubRef


def register(app: typer.Typer) -> None:
    command(app, pull)
    command(app, models)
    command(app, remove, name="rm")


def _ref(model: str, quant: str | None) -> HubRef:
    from airochat.errors import UsageError
    from airochat.services.pull import parse_ref
    from airochat.services.resolve import load_catalog

    ref = parse_ref(model, load_catalog())
    if ref is None:
        raise UsageError(f"{model} is not a Hub model (alias, owner/repo[:QUANT], owner/repo/file)")
    if quant:
        from dataclasses import replace

        ref = replace(ref, quant=quant.upper())
    return ref


def pull(
    model: Annotated[
        str,
        typer.Argument(help="alias, owner/repo[:QUANT] or owner/repo/file.gguf", metavar="MODEL"),
    ],
    quant: Annotated[
        str | None, typer.Option("--quant", help="e.g. Q4_K_M", metavar="QUANT")
    ] = None,
    gpu_layers: GpuLayersOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="replace a local copy the Hub no longer agrees with"),
    ] = False,
    keep_parts: Annotated[
        bool, typer.Option("--keep-parts", help="keep the parts of a split quant once joined")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Download a GGUF quant into the Hugging Face cache, verified by sha256."""
    with errors_to_exit(debug):
        from rich.text import Text

        from airochat.adapters.terminal import make_console
        from airochat.domain.visible import visible
        from airochat.services.pull import pull as do_pull

        settings = settings_from(gpu_layers=gpu_layers)
        ref = _ref(model, quant)
        err = make_console(stderr=True)
        result = do_pull(ref, gpu=settings.gpu_layers != "0", force=force, keep_parts=keep_parts)
        err.print(Text(visible(f"{result.option.label()}: {result.reason}"), style="dim"))
        verb = "downloaded" if result.downloaded else "already here"
        size = result.option.size / 2**30
        said = f"{ref.label()} {result.option.quant} {verb} ({size:.2f} GiB), sha256 verified"
        err.print(Text(visible(said)))  # Hub names: shown, never obeyed
        typer.echo(str(result.path))


def models(
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON list on stdout", metavar="")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """The catalog and what is downloaded: alias, repo, quant, size, fits here?"""
    with errors_to_exit(debug):
        from airochat.services.models import list_models

        rows = list_models()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from airochat.adapters.tables import print_models
        from airochat.adapters.terminal import make_console

        print_models(rows, make_console())


def remove(
    model: Annotated[
        str, typer.Argument(help="alias, owner/repo[:QUANT] or owner/repo/file", metavar="MODEL")
    ],
    quant: Annotated[
        str | None, typer.Option("--quant", help="only this quant", metavar="QUANT")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Remove a downloaded model (one quant, or all of its quants) from the cache."""
    with errors_to_exit(debug):
        from airochat.services.pull import remove as do_remove

        ref = _ref(model, quant)
        count, freed = do_remove(ref)
        from airochat.domain.visible import visible

        said = f"removed {count} file(s) of {ref.label()}, freed {freed / 2**30:.2f} GiB"
        typer.echo(visible(said))
