"""Roleplay on the command line: loading a scene file, and `airochat scene import CARD...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airochat.cli.edge import errors_to_exit
from airochat.cli.options import DebugOpt

scene_app = typer.Typer(help="Roleplay scenes: import character cards.", no_args_is_help=True)


@scene_app.command("import")
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

        from airochat.adapters.cards import card_character
        from airochat.adapters.storage import atomic_write_text
        from airochat.domain.scene import parse_scene
        from airochat.errors import UsageError

        chars = [card_character(c) for c in cards]
        names = [c["name"] for c in chars]
        together = (
            " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" and {names[-1]}"
        )
        scenario = next((c["scenario"] for c in chars if c.get("scenario")), "")
        scene = {
            "title": f"{together}",
            "user": {"name": user},
            "characters": [{k: v for k, v in c.items() if v} for c in chars],
            "rules": ["surround character actions with asterisks"],
            "setting": scenario,
            "opening": f"Generate a single interaction between {together} to start, "
            "with one sentence each."
            if len(names) > 1
            else f"{names[0]} starts the conversation.",
            "mode": "ensemble",
        }
        parse_scene(scene, "the imported scene")  # what we write must load
        text = yaml.safe_dump(scene, sort_keys=False, allow_unicode=True, width=100)
        if output is None:
            typer.echo(text, nl=False)
            return
        if output.exists():
            raise UsageError(f"{output} exists; refusing to overwrite it")
        atomic_write_text(output, text, mode=0o644)
        typer.echo(f"wrote {output} ({len(chars)} character(s))", err=True)
