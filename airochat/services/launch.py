"""From a request (a MODEL, settings, a system prompt, a scene, a session file, an engine) to a
ready chat.

`run`, `ask`, `bench` and `--print-prompt` all come through `open_chat`, so what one command
sends is what the others send. Three engines sit behind the same chat: llama-cpp-python in this
process; a llama-server airochat starts (optionally spreading layers over RPC workers); and a
server already running somewhere (llama-server or OpenAI-compatible), by URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airochat.adapters.session_lock import SessionLock
from airochat.adapters.storage import remove_stale_temps
from airochat.domain.config import Settings
from airochat.domain.engine import Engine
from airochat.domain.engine_spec import EngineSpec, LocalEngine, RunningServer, StartedServer
from airochat.domain.scene import Scene
from airochat.domain.templates import Template
from airochat.errors import UsageError
from airochat.services import loader, session_cache, session_file
from airochat.services.chat import Chat, TurnPolicy
from airochat.services.engines import Connected, connect, start_llama_server
from airochat.services.resolve import Fetch
from airochat.services.roleplay import SceneTurns


@dataclass(frozen=True)
class ChatRequest:
    engine: EngineSpec  # where the model runs, and which model
    settings: Settings
    system: str | None = None  # None: the config's, else the template's default
    scene: Scene | None = None
    session: Path | None = None  # resumed when it exists
    verbose: bool = False
    fetch: Fetch | None = None  # how a missing Hub model is downloaded (None: it is an error)
    tokenizer_only: bool = False  # for --print-prompt: no context, no generation
    # Chat settings given on the command line: over a resumed session they win, said once.
    given: dict[str, object] = field(default_factory=dict)
    lock_wait_s: float = 0.0  # how long to wait for another process holding the session
    progress: Callable[[str], None] = lambda _msg: None


@dataclass
class ReadyChat:
    chat: Chat
    engine: Engine
    where: str  # what runs the model, for the header: "CPU, 2 threads", "llama-server at ..."
    kv_type: str = "f16"
    notes: list[str] = field(default_factory=list)  # said once at start (context capped, ...)
    lock: SessionLock | None = None
    cache_max_bytes: int | None = None  # the KV cache is kept with the session (None: not)
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
        if self.lock is not None:
            self.lock.release()
        self.engine.close()
        for close in self.closers:  # a llama-server we started
            close()


def open_chat(request: ChatRequest) -> ReadyChat:
    # The session is locked before the model loads: a session open elsewhere is said at
    # once, not after minutes of loading a 70B model.
    lock = SessionLock(request.session) if request.session is not None else None
    if lock is not None:
        lock.acquire(request.lock_wait_s)
    try:
        connected = _connect(request)
        try:
            return _ready(request, connected, lock)
        except BaseException:
            connected.engine.close()
            for close in connected.closers:
                close()
            raise
    except BaseException:
        if lock is not None:
            lock.release()
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


def _ready(request: ChatRequest, connected: Connected, lock: SessionLock | None) -> ReadyChat:
    settings = request.settings
    texts = connected.texts

    def templates(name: str) -> Template:
        return loader.make_template(name, texts)

    policy: TurnPolicy | None = SceneTurns(request.scene) if request.scene else None
    chat = Chat(
        connected.engine,
        templates(connected.template_name),
        request.system if request.system is not None else (settings.system or None),
        settings.sampling,
        history=settings.history,
        model_name=connected.model_name,
        templates=templates,
        policy=policy,
    )
    ready = ReadyChat(
        chat, connected.engine, connected.where, connected.kv_type, list(connected.notes)
    )
    ready.closers = list(connected.closers)
    if settings.session_cache and request.session is not None:
        ready.cache_max_bytes = settings.session_cache_max_mb << 20
    if request.session is not None:
        _open_session(ready, request.session, request.given)
    ready.lock = lock
    return ready


def _open_session(ready: ReadyChat, path: Path, given: dict[str, object]) -> None:
    """Tidy what a killed save left, resume the session if it exists."""
    for stale in remove_stale_temps(path.parent, path.name):
        ready.notes.append(f"removed {stale.name}, left by an interrupted save")
    if path.exists():
        saved = session_file.load(ready.chat, path)
        ready.notes.append(f"resumed {len(saved.turns)} exchange(s) from {path}")
        ready.notes += session_file.retokenized(saved, ready.chat)
        ready.notes += _apply_given(ready.chat, given)
        if ready.cache_max_bytes is not None:
            note = session_cache.load(ready.chat, path)
            ready.notes += [note] if note else []


def _apply_given(chat: Chat, given: dict[str, object]) -> list[str]:
    """Options given on the command line win over the resumed session's, with a note."""
    notes = []
    sampling = {k: v for k, v in given.items() if hasattr(chat.sampling, k)}
    for key, value in sampling.items():
        before = getattr(chat.sampling, key)
        if before != value:
            notes.append(f"--{key.replace('_', '-')} {value} overrides the session's {before}")
    chat.set_sampling(**sampling)
    if "system" in given and given["system"] != chat.conversation.system:
        chat.set_system(str(given["system"]))
        notes.append("--system overrides the session's system prompt")
    if "template" in given and given["template"] != chat.template.name:
        notes.append(f"--template {given['template']} overrides the session's {chat.template.name}")
        chat.set_template(str(given["template"]))
    if "history" in given and given["history"] != chat.conversation.history:
        chat.set_history(bool(given["history"]))
        notes.append("--no-history overrides the session's memory")
    return notes
