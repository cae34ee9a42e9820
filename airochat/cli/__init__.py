"""The command line: parse options, call one service, turn errors into exit codes.

One module per command group (chat: run/ask; hub: pull/models/rm; inspect: info/bench/
templates; convert; scene). llama_cpp and huggingface_hub are imported only inside the commands
that use them, so `airochat --help` starts in the time it takes to import typer and rich.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from airochat import __version__
from airochat.cli import chat, chats, convert, hub, inspect, scene
from airochat.cli.help import Group
from airochat.errors import ExitCode

app = typer.Typer(
    name="airochat",
    help="Chat with local GGUF models, made for the airoboros family.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airochat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="show the version", metavar=""
        ),
    ] = False,
) -> None:
    """Chat with local GGUF models, made for the airoboros family."""


for group in (chat, hub, inspect, convert):
    group.register(app)
app.add_typer(scene.scene_app, name="scene")
app.add_typer(chats.chats_app, name="chats")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # between commands' own handling and the exit
        os._exit(130)
    except BrokenPipeError:
        # `airochat ask ... | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        sys.exit(int(ExitCode.OK))
