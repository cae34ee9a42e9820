"""`airochat scene import CARD...`: a scene file from character cards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from airochat.cli.edge import errors_to_exit
from airochat.cli.help import Command, Group
from airochat.cli.options import DebugOpt

scene_app = typer.Typer(
    help="Roleplay scenes: import character cards.", no_args_is_help=True, cls=Group
)


@scene_app.command("import", cls=Command)
def import_cards(
    cards: Annotated[
        list[Path], typer.Argument(help="V2/V3 character cards (.json or .png)", metavar="CARD...")
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="write the scene here (else stdout)", metavar="FILE"),
    ] = None,
    user: Annotated[
        str, typer.Option("--user", help="your name in the scene", metavar="NAME")
    ] = "User",
    debug: DebugOpt = False,
) -> None:
    """Write a scene file from character cards, keeping unused card fields under extensions."""
    with errors_to_exit(debug):
        import yaml

        from airochat.adapters.storage import atomic_write_text
        from airochat.domain.visible import visible
        from airochat.errors import UsageError
        from airochat.services.roleplay import scene_from_cards

        scene = scene_from_cards(cards, user)
        text = yaml.safe_dump(scene, sort_keys=False, allow_unicode=True, width=100)
        if output is None:
            typer.echo(visible(text) if sys.stdout.isatty() else text, nl=False)
            return
        if output.exists():
            raise UsageError(f"{output} exists; refusing to overwrite it")
        atomic_write_text(output, text, mode=0o644)
        typer.echo(f"wrote {output} ({len(scene['characters'])} character(s))", err=True)
