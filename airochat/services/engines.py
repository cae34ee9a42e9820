"""Every engine a chat runs on, built in one place from the CLI's `EngineSpec`:
llama-cpp-python in this process; a llama-server airochat starts itself (on this machine's
model file, with the same `LoadOptions` the in-process engine would load, its layers optionally
spread over llama.cpp RPC workers); or a server already running at a URL (llama.cpp's
llama-server or any OpenAI-compatible one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airochat.adapters.llama_server import LlamaServerEngine
from airochat.adapters.llama_speculative import speculator_for
from airochat.adapters.openai_server import OpenAIEngine
from airochat.adapters.server_http import (
    DEFAULT_TIMEOUT_S,
    ServerError,
    ServerUnreachable,
    check_api_key,
    client,
    request,
    sniff,
)
from airochat.adapters.server_process import ServerFlags, ServerProcess, find_binary
from airochat.adapters.speculative_server import started_server_flags
from airochat.domain.config import Settings
from airochat.domain.engine import BenchProbes, Engine
from airochat.domain.engine_spec import EngineSpec, LocalEngine, RunningServer, StartedServer
from airochat.domain.templates import DEFAULT_TEMPLATE, template_for_model_name
from airochat.errors import UsageError
from airochat.services import draft_model, loader
from airochat.services.resolve import Fetch, load_catalog

START_TIMEOUT_S = 600.0  # a 70B model over RPC takes minutes to load


@dataclass
class Connected:
    """An engine ready to chat, and what the chat needs to know about it."""

    engine: Engine
    model_name: str
    template_name: str
    texts: loader.ModelTexts
    where: str
    notes: list[str] = field(default_factory=list)
    kv_type: str = "f16"
    closers: list[Callable[[], None]] = field(default_factory=list)
    probes: BenchProbes | None = None  # what bench compares with; None: nothing to compare

    def close(self) -> None:
        self.engine.close()
        for close in self.closers:  # a llama-server we started
            close()


@dataclass(frozen=True)
class Opening:
    """How an engine is opened, whatever its kind."""

    settings: Settings
    fetch: Fetch | None = None  # how a missing Hub model is downloaded (None: an error)
    verbose: bool = False
    tokenizer_only: bool = False  # --print-prompt: the tokenizer alone, no context
    progress: Callable[[str], None] = lambda _msg: None


def open_engine(
    spec: EngineSpec,
    settings: Settings,
    *,
    fetch: Fetch | None = None,
    verbose: bool = False,
    tokenizer_only: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Connected:
    """The engine `spec` asks for, opened, with what the chat needs to know about it."""
    how = Opening(settings, fetch, verbose, tokenizer_only, progress)
    match spec:
        case LocalEngine():
            return _local(spec, how)
        case StartedServer():
            return _started(spec, how)
        case RunningServer():
            return _running(spec, how)


def _local(spec: LocalEngine, how: Opening) -> Connected:
    if spec.model is None:
        raise UsageError("name a MODEL (or give --server URL)")
    plan = loader.plan(how.settings, spec.model, how.fetch)
    draft = draft_model.checked_draft(how.settings, plan, how.fetch)  # before anything loads
    engine = loader.load(plan, how.settings, how.verbose, vocab_only=how.tokenizer_only)
    engine.speculator = speculator_for(how.settings.speculate)
    if draft is not None and not how.tokenizer_only:
        try:
            engine.speculator = draft_model.load_draft(draft, plan, how.settings, how.verbose)
        except BaseException:
            engine.close()
            raise
    offload = plan.offload.n_gpu_layers
    where = f"{offload} GPU layers" if offload else "CPU"
    return Connected(
        engine=engine,
        model_name=plan.model.name,
        template_name=plan.template.value,
        texts=loader.model_texts(plan.header, engine),
        where=f"{where}, {plan.threads} threads",
        notes=list(plan.notes),
        kv_type=plan.kv_type,
        probes=engine,
    )


def detect_kind(url: str, api_key: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """llama.cpp's llama-server answers GET /props; an OpenAI-compatible server /v1/models."""
    sniff(url)
    http = client(url, api_key, timeout_s)
    try:
        try:
            props = request(http, "GET", "/props", "asking the server what it is")
            if isinstance(props, dict) and "default_generation_settings" in props:
                return "llama"
        except ServerUnreachable:
            raise
        except ServerError:
            pass
        request(http, "GET", "/v1/models", "asking the server what it is")
        return "openai"
    finally:
        http.close()


@dataclass
class _AtUrl:
    """A running server's engine and what it says of its model."""

    engine: Engine
    served: str  # the model's name as the server gives it
    own_template: str  # the server's chat template ("" when it does not say)
    texts: loader.ModelTexts
    where: str
    notes: list[str] = field(default_factory=list)
    probes: BenchProbes | None = None


def _llama_at(spec: RunningServer, how: Opening) -> _AtUrl:
    llama = LlamaServerEngine(spec.url, spec.api_key, how.settings.server_timeout)
    facts = llama.facts
    texts = loader.ModelTexts(
        facts.model, facts.chat_template or None, facts.bos_text, (facts.eos_text,)
    )
    where = f"llama-server at {spec.url}"
    return _AtUrl(llama, facts.model, facts.chat_template, texts, where, probes=llama)


def _openai_at(spec: RunningServer, how: Opening) -> _AtUrl:
    openai = OpenAIEngine(
        spec.url, _model_id(spec.model), spec.api_key, how.settings.server_timeout
    )
    texts = loader.ModelTexts(openai.model, None, "", ("</s>",))
    where = f"OpenAI-compatible server at {spec.url}"
    return _AtUrl(openai, openai.model, "", texts, where, list(openai.notes))


_AT_URL: dict[str, Callable[[RunningServer, Opening], _AtUrl]] = {
    "llama": _llama_at,
    "openai": _openai_at,
}


def _running(spec: RunningServer, how: Opening) -> Connected:
    if spec.api_key:  # a bad key is the command line's fault, said before any connection
        check_api_key(spec.api_key)
    kind = spec.kind or detect_kind(spec.url, spec.api_key, how.settings.server_timeout)
    at = _AT_URL[kind](spec, how)
    notes = [
        f"{flag} belongs to the server: ignored here (start the server with it)"
        for flag in spec.server_owned
    ]
    notes += at.notes
    template, why = template_for_server(spec.model, at.served)
    if how.settings.template:
        template = how.settings.template
    elif template == DEFAULT_TEMPLATE:
        own_too = "; --template gguf uses the server's chat template" if at.own_template else ""
        notes.append(f"template {template}: {why}{own_too}")
    return Connected(
        at.engine, Path(at.served).name, template, at.texts, at.where, notes, probes=at.probes
    )


def _model_id(model: str | None) -> str | None:
    """MODEL with --server: a catalog alias stands for its repo (the id vLLM serves it
    under); anything else is taken as the server's own id for the model."""
    if model is None:
        return None
    entry = load_catalog().get(model.partition(":")[0])
    return entry.repo if entry is not None and entry.repo else model


def template_for_server(model: str | None, served: str) -> tuple[str, str]:
    """(template, why) for a chat through a server: the catalog entry MODEL names, else the
    airoboros rule on the model's name, else airoboros. (llama-server reports a chat template
    even for a model without one -- its own default -- so it is used only when asked for.)"""
    if model:
        entry = load_catalog().get(model.partition(":")[0])
        if entry is not None and entry.template:
            return entry.template, f"from the catalog entry {entry.alias}"
    for name in (n for n in (model, served) if n):
        by_name = template_for_model_name(Path(name).name)
        if by_name:
            return by_name, f"from the model name {name!r}"
    return DEFAULT_TEMPLATE, "the default (no catalog entry or airoboros name)"


def server_note(extra: tuple[str, ...]) -> str:
    """What the chat's first lines say about how the server was started."""
    spec = extra[extra.index("--spec-type") + 1] if "--spec-type" in extra else "none"
    return (
        f"llama-server with --swa-full (later turns read only their new tokens), --spec-type {spec}"
    )


def _started(spec: StartedServer, how: Opening) -> Connected:
    """Plan as for the in-process engine, then run llama-server with that plan."""
    settings = how.settings
    if spec.model is None:
        raise UsageError("name a MODEL for llama-server to load")
    binary = find_binary(spec.binary or settings.llama_server or None)
    plan = loader.plan(settings, spec.model, how.fetch)
    draft = draft_model.checked_draft(settings, plan, how.fetch)
    flags = ServerFlags(
        loader.load_options(plan, settings, plan.ctx, how.verbose),
        spec.workers,
        started_server_flags(settings.speculate, str(draft.path) if draft else ""),
    )
    process = ServerProcess(binary, flags, how.verbose)
    try:
        process.wait_ready(START_TIMEOUT_S, how.progress)
        engine = LlamaServerEngine(process.url, timeout_s=settings.server_timeout)
    except BaseException:
        process.stop()
        raise
    texts = loader.ModelTexts(
        plan.model.path.name, plan.header.chat_template, engine.facts.bos_text,
        (engine.facts.eos_text,),
    )  # fmt: skip
    workers = f", layers on RPC workers {', '.join(spec.workers)}" if spec.workers else ""
    return Connected(
        engine=engine,
        model_name=plan.model.name,
        template_name=plan.template.value,
        texts=texts,
        where=f"llama-server (started here, {plan.threads} threads{workers})",
        notes=[*plan.notes, server_note(flags.extra)],
        kv_type=plan.kv_type,
        closers=[process.stop],
        probes=engine,
    )
