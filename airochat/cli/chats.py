"""`airochat chats`: the chat library -- list (newest first), search, show, export, import, rm.
Every chat of `run` and `ask` is kept there (services/library.py) unless --incognito or
`keep_chats = false`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from airochat.cli.edge import errors_to_exit, note
from airochat.cli.help import Command, Group
from airochat.cli.options import DebugOpt

chats_app = typer.Typer(
    help="The chat library: every chat kept; list, search, show, export, import, rm.",
    invoke_without_command=True,
    cls=Group,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout", metavar="")]
IdArg = Annotated[int, typer.Argument(help="the chat's id (`airochat chats`)", metavar="ID")]


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


@chats_app.callback()
def list_chats(ctx: typer.Context, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List the kept chats, newest first: id, last used, exchanges, model, title."""
    if ctx.invoked_subcommand is None:
        _list(as_json, debug)


@chats_app.command("list", cls=Command)
def list_command(as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """The same list as `airochat chats`: id, last used, exchanges, model, title."""
    _list(as_json, debug)


def _list(as_json: bool, debug: bool) -> None:
    with errors_to_exit(debug):
        from airochat.domain.visible import visible
        from airochat.services import library

        chats = library.list_chats(library.db_path())
        if as_json:
            typer.echo(library.as_json(chats))
            return
        if not chats:
            note("no chats kept yet (every chat of `airochat run` and `ask` is kept here)")
            return
        typer.echo(f"{'ID':>5}  {'LAST USED':<16}  {'TURNS':>5}  {'MODEL':<24}  TITLE")
        for c in chats:
            title = visible(c.title).replace("\n", " ")
            model = visible(c.model or c.model_ref)[:24]
            typer.echo(f"{c.id:>5}  {_when(c.updated):<16}  {c.turns:>5}  {model:<24}  {title}")


@chats_app.command("search", cls=Command)
def search(
    words: Annotated[
        list[str], typer.Argument(help="words that must all be there", metavar="WORDS")
    ],
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="at most N hits", metavar="N")] = 50,
    debug: DebugOpt = False,
) -> None:
    """Find chats by what was said (messages and replies): the matching lines, with the id."""
    with errors_to_exit(debug):
        from airochat.domain.visible import visible
        from airochat.errors import ExitCode
        from airochat.services import library

        hits = library.search(library.db_path(), words, limit)
        if as_json:
            typer.echo(json.dumps([vars(h) for h in hits], ensure_ascii=False, indent=1))
        for h in [] if as_json else hits:
            typer.echo(f"chat {h.chat_id} · exchange {h.turn} · {visible(h.title)}")
            for line in h.lines:
                typer.echo(f"    {visible(line)}")
        if not hits:
            raise typer.Exit(int(ExitCode.ERROR))


@chats_app.command("show", cls=Command)
def show(
    chat_id: IdArg,
    as_json: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="as markdown", metavar="")] = False,
    branches: Annotated[
        bool, typer.Option("--branches", help="also the branches left behind", metavar="")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Print a chat (the branch in force; --branches adds the others)."""
    with errors_to_exit(debug):
        from airochat.domain.chat_library import to_markdown
        from airochat.domain.visible import visible
        from airochat.services import library

        summary, saved = library.show(library.db_path(), chat_id)
        others = library.branches(library.db_path(), chat_id) if branches else []
        if as_json:
            data = {"id": summary.id, "title": summary.title, **saved.to_json()}
            if branches:
                data["branches"] = [{"after": b.after, "turns": b.messages} for b in others]
            typer.echo(json.dumps(data, ensure_ascii=False, indent=1))
            return
        if markdown:
            typer.echo(visible(to_markdown(summary, saved)), nl=False)
        else:
            typer.echo(f"chat {summary.id} · {visible(summary.title)} · {saved.model}")
            for turn in saved.turns:
                typer.echo(
                    f"\n> {visible(turn.message)}\n{visible(turn.reply_prefix + turn.reply)}"
                )
        for i, b in enumerate(others, 1):
            typer.echo(f"\n-- branch {i}, after exchange {b.after} --")
            for message, reply in b.messages:
                typer.echo(f"\n> {visible(message)}\n{visible(reply)}")


@chats_app.command("export", cls=Command)
def export(
    chat_id: IdArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="F.md (markdown) or F.json (a session file)",
                           metavar="FILE")
    ],
    debug: DebugOpt = False,
) -> None:  # fmt: skip
    """Write a chat to markdown or to a session file (`--session` and /load read it)."""
    with errors_to_exit(debug):
        from airochat.services import library

        note(library.export(library.db_path(), chat_id, output))


@chats_app.command("rm", cls=Command)
def rm(
    ids: Annotated[list[int] | None, typer.Argument(help="chat ids", metavar="ID...")] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="chats last used before: 30d, 12h, 2w",
                                 metavar="AGE")
    ] = None,
    debug: DebugOpt = False,
) -> None:  # fmt: skip
    """Delete chats for real (no trace left in the database file) and their caches."""
    with errors_to_exit(debug):
        from airochat.errors import UsageError
        from airochat.services import library

        if not ids and older_than is None:
            raise UsageError("name the chats to delete (ID...) or give --older-than AGE")
        for line in library.remove(library.db_path(), ids or [], older_than):
            note(line)


@chats_app.command("import", cls=Command)
def import_files(
    files: Annotated[list[Path], typer.Argument(help="session files (JSON)", metavar="FILE...")],
    debug: DebugOpt = False,
) -> None:
    """Bring session files (`--session`, /save) into the library, each as a new chat."""
    with errors_to_exit(debug):
        from airochat.services import library

        for line in library.import_files(library.db_path(), files):
            note(line)
