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
from airochat.domain.engine import BenchProbes, Engine
from airochat.domain.engine_spec import EngineSpec
from airochat.domain.scene import Scene
from airochat.domain.templates import Template
from airochat.services import loader
from airochat.services.chat import Chat
from airochat.services.chat_store import ChatStore
from airochat.services.engines import Connected, open_engine
from airochat.services.kept_chat import KeptChat
from airochat.services.model_defaults import fitted_sampling, fitted_system
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
    probes: BenchProbes | None = None  # for bench: the engine's raw API, where it has one

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
            connected.close()
            raise
    except BaseException:
        if store is not None:
            store.close()
        raise


def _connect(request: ChatRequest) -> Connected:
    return open_engine(
        request.engine,
        request.settings,
        fetch=request.fetch,
        verbose=request.verbose,
        tokenizer_only=request.tokenizer_only,
        progress=request.progress,
    )


def _ready(request: ChatRequest, connected: Connected, held: list[str]) -> ReadyChat:
    settings = request.settings
    texts = connected.texts
    given = set(request.given)

    def templates(name: str) -> Template:
        return loader.make_template(name, texts)

    entry = load_catalog().get(connected.model_name)
    system = request.system if request.system is not None else (settings.system or None)
    chat = Chat(
        connected.engine,
        templates(connected.template_name),
        fitted_system(system, entry),
        fitted_sampling(settings.sampling, entry, given),
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
    ready.probes = connected.probes
    ready.notes += held
    ready.notes += kept.resume(request.given)
    return ready
