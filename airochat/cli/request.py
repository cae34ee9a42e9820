"""From the shared options to what the services take: the settings, the engine spec (built
here and nowhere else), and the chat request."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from airochat.cli.edge import make_fetch, note, settings_from
from airochat.cli.options import ChatOptions, LoadingOptions, SamplingOptions, WhereOptions
from airochat.errors import UsageError

if TYPE_CHECKING:
    from airochat.domain.cancel import CancelToken
    from airochat.domain.config import Settings
    from airochat.domain.engine_spec import EngineSpec
    from airochat.services.chat_store import ChatStore
    from airochat.services.launch import ChatRequest


def settings_for(
    sampling: SamplingOptions, loading: LoadingOptions, where: WhereOptions, **more: object
) -> Settings:
    """The shipped defaults, the user's config.toml, then the options given (None: not)."""
    load = asdict(loading)
    return settings_from(
        **asdict(sampling),
        **{k: v for k, v in load.items() if k not in ("mlock", "no_mmap")},
        mlock=True if loading.mlock else None,
        mmap=False if loading.no_mmap else None,
        engine=where.engine,
        **more,
    )


def chat_settings(opts: ChatOptions, history: bool | None = None) -> Settings:
    return settings_for(
        opts.sampling, opts.loading, opts.where,
        template=opts.template, max_tokens=opts.max_tokens, history=history,
        session_cache=False if opts.no_session_cache else None,
    )  # fmt: skip


def server_url(where: WhereOptions, settings: Settings) -> str | None:
    """The running server the chat goes to, from --server (or its variable) or the config."""
    return where.server or settings.server or None


def engine_spec(
    where: WhereOptions, loading: LoadingOptions, settings: Settings, model: str | None
) -> EngineSpec:
    """Where the model runs: a running server (by URL), a llama-server started here (also
    for --rpc), or this process."""
    from airochat.domain.engine_spec import LocalEngine, RunningServer, ServerKind, StartedServer

    server = server_url(where, settings)
    kinds: dict[str, ServerKind] = {"": "", "llama": "llama", "openai": "openai"}
    kind = (where.server_kind or "").lower()
    if kind not in kinds:
        raise UsageError(f"--server-kind is llama or openai, not {where.server_kind!r}")
    rpc = tuple(h.strip() for h in (where.rpc or "").split(",") if h.strip())
    if server and rpc:
        raise UsageError("--rpc starts a llama-server here; it does not go with --server")
    if server:
        return RunningServer(server, model, kinds[kind], where.api_key, loading.given())
    if rpc or settings.engine == "llama-server":
        return StartedServer(model, where.llama_server, rpc)
    return LocalEngine(model)


def chat_store(opts: ChatOptions) -> ChatStore | None:
    """Where the chat is kept between processes: the session file named with --session, else
    nowhere (the place a chat library, --continue or --incognito decides)."""
    from airochat.services.session_file import SessionFile

    return SessionFile(opts.session) if opts.session is not None else None


def typed_settings(opts: ChatOptions, history: bool | None = None) -> dict[str, object]:
    """The chat settings typed on this command line (they win over a resumed chat's)."""
    typed = {
        **asdict(opts.sampling),
        "max_tokens": opts.max_tokens,
        "system": opts.system,
        "template": opts.template,
        "history": history,
    }
    return {k: v for k, v in typed.items() if v is not None}


def chat_request(
    opts: ChatOptions,
    settings: Settings,
    model: str | None,
    cancel: CancelToken,
    *,
    interactive: bool,
    history: bool | None = None,
    tokenizer_only: bool = False,
) -> ChatRequest:
    """The request for a chat (run, ask): its engine, where it is kept, what it starts with."""
    from airochat.services.launch import ChatRequest
    from airochat.services.roleplay import load_scene_file

    return ChatRequest(
        engine=engine_spec(opts.where, opts.loading, settings, model),
        settings=settings,
        system=opts.system,
        scene=load_scene_file(opts.scene) if opts.scene is not None else None,
        store=chat_store(opts),
        verbose=opts.verbose,
        fetch=None if tokenizer_only else make_fetch(settings, opts.yes, interactive),
        tokenizer_only=tokenizer_only,
        given=typed_settings(opts, history),
        lock_wait_s=0.0 if interactive else 10.0,  # a script waits its turn; a person is told
        progress=note,
        cancel=cancel,
    )
