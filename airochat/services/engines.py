"""Engines beyond this process: a running server reached by URL (llama.cpp's llama-server or
any OpenAI-compatible one), and a llama-server airochat starts itself -- on this machine's
model file, with the flags it would use in-process, its layers optionally spread over llama.cpp
RPC workers on other machines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from airochat.adapters.llama_server import LlamaServerEngine
from airochat.adapters.openai_server import OpenAIEngine
from airochat.adapters.server_http import ServerError, client, request
from airochat.adapters.server_process import ServerFlags, ServerProcess, find_binary
from airochat.adapters.speculative_server import started_server_flags
from airochat.domain.engine import Engine
from airochat.domain.engine_spec import RunningServer, StartedServer
from airochat.domain.templates import DEFAULT_TEMPLATE, template_for_model_name
from airochat.errors import UsageError
from airochat.services import loader
from airochat.services.resolve import load_catalog

if TYPE_CHECKING:
    from airochat.services.launch import ChatRequest

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
    catalog_template: bool = False
    closers: list[Callable[[], None]] = field(default_factory=list)


def detect_kind(url: str, api_key: str | None) -> str:
    """llama.cpp's llama-server answers GET /props; an OpenAI-compatible server /v1/models."""
    http = client(url, api_key)
    try:
        try:
            props = request(http, "GET", "/props", "asking the server what it is")
            if isinstance(props, dict) and "default_generation_settings" in props:
                return "llama"
        except ServerError as exc:
            if "cannot reach" in str(exc):
                raise
        request(http, "GET", "/v1/models", "asking the server what it is")
        return "openai"
    finally:
        http.close()


def connect(spec: RunningServer, req: ChatRequest) -> Connected:
    kind = spec.kind or detect_kind(spec.url, spec.api_key)
    notes = [
        f"{flag} belongs to the server: ignored here (start the server with it)"
        for flag in spec.server_owned
    ]
    engine: Engine
    if kind == "llama":
        llama = LlamaServerEngine(spec.url, spec.api_key)
        facts = llama.facts
        served, own = facts.model, facts.chat_template
        texts = loader.ModelTexts(served, own or None, facts.bos_text, (facts.eos_text,))
        engine, where = llama, f"llama-server at {spec.url}"
    else:
        openai = OpenAIEngine(spec.url, _model_id(spec.model), spec.api_key)
        served, own = openai.model, ""
        notes += openai.notes
        texts = loader.ModelTexts(served, None, "", ("</s>",))
        engine, where = openai, f"OpenAI-compatible server at {spec.url}"
    template, why = template_for_server(spec.model, served)
    if req.settings.template:
        template = req.settings.template
    elif template == DEFAULT_TEMPLATE:
        own_too = "; --template gguf uses the server's chat template" if own else ""
        notes.append(f"template {template}: {why}{own_too}")
    return Connected(engine, Path(served).name, template, texts, where, notes)


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
    """What `info` and the chat's first lines say about how the server was started."""
    spec = extra[extra.index("--spec-type") + 1] if "--spec-type" in extra else "none"
    return (
        f"llama-server with --swa-full (later turns read only their new tokens), --spec-type {spec}"
    )


def start_llama_server(spec: StartedServer, req: ChatRequest) -> Connected:
    """Plan as for the in-process engine, then run llama-server with that plan."""
    settings = req.settings
    if spec.model is None:
        raise UsageError("name a MODEL for llama-server to load")
    binary = find_binary(spec.binary or settings.llama_server or None)
    plan = loader.plan(settings, spec.model, req.fetch)
    flags = ServerFlags(
        model=plan.model.path,
        ctx=plan.ctx,
        threads=plan.threads,
        # Over RPC every layer goes to the workers; llama.cpp spreads them by their memory.
        gpu_layers=999 if spec.workers else plan.offload.n_gpu_layers,
        rope_freq_scale=1.0 / plan.rope_scale if plan.rope_scale else 0.0,
        rope_freq_base=settings.rope_freq_base,
        kv_type=plan.kv_type,
        rpc=spec.workers,
        extra=(*started_server_flags(settings.speculate), *(("--verbose",) if req.verbose else ())),
    )
    process = ServerProcess(binary, flags, req.verbose)
    try:
        process.wait_ready(START_TIMEOUT_S, req.progress)
        engine = LlamaServerEngine(process.url)
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
    )
