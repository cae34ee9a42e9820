"""Help that reads like every other tool's, through typer's public hook (`cls=`): a usage line
with `MODEL` and `[PROMPT]` (typer 0.29 writes `{MODEL}`), and no type column for flags and
arguments (`<bool>`, `<str>`): their help says what they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# typer vendors click as a private module; its Context and Parameter are typed Any here.
Context = Any


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Context) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = self.display_name_raw
        name += "..." if self.nargs != 1 and not name.endswith("...") else ""
        return [name if self.required else f"[{name}]"]


def _conventional(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            param.__class__ = _Argument  # typer builds its own; ours differs only in help
        elif isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """Every airochat command: `app.command(cls=Command)`."""

    # The arguments as the usage line shows them, where that is not what the parser alone
    # says (ask: MODEL is left out only with --server).
    usage_arguments: str | None = None

    def get_params(self, ctx: Context) -> list[Any]:
        return _conventional(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        if self.usage_arguments is None:
            return super().collect_usage_pieces(ctx)
        return [self.options_metavar or "", self.usage_arguments]


class AskCommand(Command):
    usage_arguments = "MODEL [PROMPT]"


class Group(TyperGroup):
    """The app and its command groups: `typer.Typer(cls=Group)`."""

    def get_params(self, ctx: Context) -> list[Any]:
        return _conventional(super().get_params(ctx))


def command(
    app: typer.Typer,
    function: Callable[..., Any],
    name: str | None = None,
    cls: type[Command] = Command,
) -> None:
    """Register `function` as a command of `app`, with airochat's help."""
    app.command(name=name, cls=cls)(function)
