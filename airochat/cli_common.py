"""Plumbing shared by the CLI commands: settings from options, errors to exit codes, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from airochat.errors import AirochatError, ConfigError, ExitCode, UsageError


def err(message: str) -> None:
    from rich.text import Text

    from airochat.adapters.terminal import make_console

    make_console(stderr=True).print(Text(f"airochat: error: {message}", style="red"))


@contextmanager
def errors_to_exit(debug: bool) -> Iterator[None]:
    try:
        yield
    except AirochatError as exc:
        if debug:
            raise
        err(str(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def settings_from(**overrides: Any) -> Any:
    from airochat.adapters import locations
    from airochat.domain.config import load_settings

    base = load_settings(
        locations.data_file("configs/default.toml"), locations.config_dir() / "config.toml"
    )
    try:
        return base.with_overrides(**overrides)
    except ConfigError as exc:  # a bad option value, not a bad file
        raise UsageError(f"bad option: {exc}") from None


def load_overrides(
    gpu_layers: str | None,
    rope_scale: float | None,
    rope_base: float | None,
    mlock: bool,
    no_mmap: bool,
) -> dict[str, Any]:
    return {
        "gpu_layers": gpu_layers,
        "rope_scale": rope_scale,
        "rope_freq_base": rope_base,
        "mlock": True if mlock else None,
        "mmap": False if no_mmap else None,
    }


def print_notes(plan: Any) -> None:
    from airochat.adapters.terminal import make_console

    for note in plan.notes:
        make_console(stderr=True).print(f"[dim]airochat: {note}[/dim]", highlight=False)


def make_fetch(settings: Any, yes: bool, interactive: bool) -> Any:
    """How a missing Hub model is fetched: at once with --yes, after asking in the REPL,
    not at all in scripts (the error then says to pull or pass --yes)."""
    if not yes and not interactive:
        return None
    from airochat.services.pull import pull

    def confirm(question: str) -> bool:
        return bool(typer.confirm(question, default=False, err=True))

    def fetch(ref: Any) -> Any:
        return pull(ref, gpu=settings.gpu_layers != "0", confirm=None if yes else confirm).path

    return fetch


def open_session(
    settings: Any, model: str, system: str | None, verbose: bool, fetch: Any = None
) -> Any:
    from airochat.services import loader
    from airochat.services.chat import ChatSession

    plan = loader.plan(settings, model, fetch)
    engine = loader.load(plan, settings, verbose=verbose)
    print_notes(plan)
    template = loader.make_template(plan.template, plan.header, engine)
    session = ChatSession(
        engine,
        template,
        system if system is not None else (settings.system or None),
        settings.sampling,
        history=settings.history,
        model_name=plan.model.name,
    )
    return session, plan
