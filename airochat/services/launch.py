"""From a request (a MODEL, settings, a system prompt, a scene, where the chat is kept, an
engine) to a ready chat.

`run`, `ask`, `bench` and `--print-prompt` all come through `open_chat`, so what one command
sends is what the others send. Three engines sit behind the same chat: llama-cpp-python in this
process; a llama-server airochat starts (optionally spreading layers over RPC workers); and a
server already running somewhere (llama-server or OpenAI-compatible), by URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from airochat.domain.cancel import CancelToken
from airochat.domain.config import Settings
from airochat.domain.engine import Engine
from airochat.domain.engine_spec import EngineSpec, LocalEngine, RunningServer, StartedServer
from airochat.domain.scene import Scene
from airochat.domain.templates import Template
from airochat.errors import UsageError
from airochat.services import loader
from airochat.services.chat import Chat
from airochat.services.chat_store import ChatStore
from airochat.services.engines import Connected, connect, start_llama_server
from airochat.services.kept_chat import KeptChat
from airochat.services.model_defaults import fitted_sampling
from airochat.services.resolve import Fetch, load_catalog
from airochat.services.roleplay import turns_for


@dataclass(frozen=True)
class ChatRequest:
    engine: EngineSpec  # where the model runs, and which model
    settings: Settings
    system: str | None = None  # None: the config's, else the template's default
    scene: Scene | None = None
    store: ChatStore | None = None  # where the chat is kept (resumed when it holds one)
    verbose: bool = False
    fetch: Fetch | None = None  # how a missing Hub model is downloaded (None: it is an error)
    tokenizer_only: bool = False  # for --print-prompt: no context, no generation
    # Chat settings given on the command line: over a resumed session they win, said once.
    given: dict[str, object] = field(default_factory=dict)
    lock_wait_s: float = 0.0  # how long to wait for another process holding the chat
    progress: Callable[[str], None] = lambda _msg: None
    cancel: CancelToken | None = None  # stops a reply from outside (the CLI's signal handler)


@dataclass
class ReadyChat:
    chat: Chat
    engine: Engine
    where: str  # what runs the model, for the header: "CPU, 2 threads", "llama-server at ..."
    kept: KeptChat  # the chat's life on disk: resumed, saved, its model cache, its lock
    kv_type: str = "f16"
    notes: list[str] = field(default_factory=list)  # said once at start (context capped, ...)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def header(self) -> str:
        """One line about what is running, for the REPL's start."""
        chat = self.chat
        memory = "on" if chat.conversation.history else "off (--no-history)"
        kv = "" if self.kv_type == "f16" else f" · KV {self.kv_type}"
        return (
            f"{chat.model_name} · template {chat.template.name} · context {chat.engine.n_ctx}"
            f"{kv} · {self.where} · memory {memory}"
        )

    def close(self) -> None:
        self.kept.close()
        self.engine.close()
        for close in self.closers:  # a llama-server we started
            close()


def open_chat(request: ChatRequest) -> ReadyChat:
    # The chat is held (locked) before the model loads: a chat open elsewhere is said at
    # once, not after minutes of loading a 70B model.
    store = request.store
    held = store.open(request.lock_wait_s) if store is not None else []
    try:
        connected = _connect(request)
        try:
            return _ready(request, connected, held)
        except BaseException:
            connected.engine.close()
            for close in connected.closers:
                close()
            raise
    except BaseException:
        if store is not None:
            store.close()
        raise


def _connect(request: ChatRequest) -> Connected:
    match request.engine:
        case RunningServer() as spec:
            return connect(spec, request)
        case StartedServer() as spec:
            return start_llama_server(spec, request)
        case LocalEngine() as spec:
            return _local(spec, request)


def _local(spec: LocalEngine, request: ChatRequest) -> Connected:
    settings = request.settings
    if spec.model is None:
        raise UsageError("name a MODEL (or give --server URL)")
    plan = loader.plan(settings, spec.model, request.fetch)
    engine = loader.load(plan, settings, request.verbose, vocab_only=request.tokenizer_only)
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
        catalog_template=bool(plan.model.entry and plan.model.entry.template),
    )


def _ready(request: ChatRequest, connected: Connected, held: list[str]) -> ReadyChat:
    settings = request.settings
    texts = connected.texts
    given = set(request.given)

    def templates(name: str) -> Template:
        return loader.make_template(name, texts)

    chat = Chat(
        connected.engine,
        templates(connected.template_name),
        request.system if request.system is not None else (settings.system or None),
        fitted_sampling(settings.sampling, load_catalog().get(connected.model_name), given),
        history=settings.history,
        model_name=connected.model_name,
        templates=templates,
        policy=turns_for(request.scene),
        cancel=request.cancel,
    )
    cap = settings.session_cache_max_mb << 20 if settings.session_cache else None
    kept = KeptChat(chat, request.store, None if request.tokenizer_only else cap)
    ready = ReadyChat(
        chat, connected.engine, connected.where, kept, connected.kv_type, list(connected.notes)
    )
    ready.closers = list(connected.closers)
    ready.notes += held
    ready.notes += kept.resume(request.given)
    return ready
