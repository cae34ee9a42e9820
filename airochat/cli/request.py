"""From the shared options to what the services take: the settings, the engine spec (built
here and nowhere else), and the chat request."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from airochat.cli.edge import make_fetch, note, settings_from
from airochat.cli.options import ChatOptions, LoadingOptions, SamplingOptions, WhereOptions
from airochat.errors import UsageError

if TYPE_CHECKING:
    from airochat.domain.cancel import CancelToken
    from airochat.domain.chat_library import ChatSummary
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


def chat_store(
    opts: ChatOptions, settings: Settings, model: str | None, resumed: ChatSummary | None = None
) -> ChatStore | None:
    """Where the chat is kept between processes: the session file named with --session, else
    the chat library (the chat `resumed` names, else a new one), unless --incognito or
    `keep_chats = false` keep it nowhere."""
    from airochat.services import library
    from airochat.services.session_file import SessionFile

    if opts.session is not None:
        return SessionFile(opts.session)
    resuming = opts.resume_latest or opts.chat_id is not None
    if opts.incognito or not (settings.keep_chats or resuming):
        return None
    ref = model or (resumed.model_ref if resumed is not None else "")
    if ref and Path(ref).expanduser().is_file():  # what -c loads again, from any folder
        ref = str(Path(ref).expanduser().resolve())
    return library.LibraryStore(
        library.db_path(),
        resumed.id if resumed is not None else None,
        ref,
        settings.chat_cache_max_mb << 20,
        required=resumed is not None,
    )


def resumed_chat(opts: ChatOptions, model: str | None) -> ChatSummary | None:
    """The kept chat -c/--continue (the latest, of MODEL if named) or --chat ID names; None
    for a new chat (-c with none kept yet says so)."""
    resuming = opts.resume_latest or opts.chat_id is not None
    if not resuming:
        return None
    if opts.session is not None or opts.incognito:
        flag = "--session" if opts.session is not None else "--incognito"
        raise UsageError(f"-c/--continue and --chat resume a kept chat; they do not go with {flag}")
    from airochat.services import library

    found = library.find_chat(library.db_path(), opts.chat_id, model)
    if found is None:
        of = f" of {model}" if model else ""
        note(f"no kept chat{of} to continue: a new one starts")
    return found


def keeping_note(opts: ChatOptions, settings: Settings) -> str | None:
    """The banner's word on a chat that is not kept."""
    if opts.session is not None:
        return None
    if opts.incognito:
        return "incognito: this chat is not kept (not in the chat library, no session file)"
    if not settings.keep_chats and opts.chat_id is None and not opts.resume_latest:
        return "this chat is not kept (keep_chats = false in config.toml)"
    return None


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
    resumed: ChatSummary | None = None,
) -> ChatRequest:
    """The request for a chat (run, ask): its engine, where it is kept, what it starts with."""
    from airochat.services.launch import ChatRequest
    from airochat.services.roleplay import load_scene_file

    return ChatRequest(
        engine=engine_spec(opts.where, opts.loading, settings, model),
        settings=settings,
        system=opts.system,
        scene=load_scene_file(opts.scene) if opts.scene is not None else None,
        store=chat_store(opts, settings, model, resumed),
        verbose=opts.verbose,
        fetch=None if tokenizer_only else make_fetch(settings, opts.yes, interactive),
        tokenizer_only=tokenizer_only,
        given=typed_settings(opts, history),
        lock_wait_s=0.0 if interactive else 10.0,  # a script waits its turn; a person is told
        progress=note,
        cancel=cancel,
    )
