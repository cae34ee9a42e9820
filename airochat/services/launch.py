"""From a request (a MODEL, settings, a system prompt, a scene, a session file) to a ready chat.

`run`, `ask`, `bench` and `--print-prompt` all come through `open_chat`, so what one command
sends is what the others send; `--print-prompt` asks for a tokenizer-only engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airochat.adapters.llama_engine import LlamaEngine
from airochat.adapters.session_lock import SessionLock
from airochat.adapters.storage import remove_stale_temps
from airochat.domain.config import Settings
from airochat.domain.engine import Engine
from airochat.domain.scene import Scene
from airochat.domain.templates import Template
from airochat.services import loader, session_cache, session_file
from airochat.services.chat import Chat, TurnPolicy
from airochat.services.resolve import Fetch
from airochat.services.roleplay import SceneTurns


@dataclass(frozen=True)
class ChatRequest:
    model: str
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


@dataclass
class ReadyChat:
    chat: Chat
    plan: loader.ModelPlan
    engine: Engine
    notes: list[str] = field(default_factory=list)  # said once at start (context capped, ...)
    lock: SessionLock | None = None
    cache_max_bytes: int | None = None  # the KV cache is kept with the session (None: not)

    def header(self) -> str:
        """One line about what is running, for the REPL's start."""
        chat, plan = self.chat, self.plan
        memory = "on" if chat.conversation.history else "off (--no-history)"
        offload = plan.offload.n_gpu_layers
        where = f"{offload} GPU layers" if offload else "CPU"
        kv = "" if self.plan.kv_type == "f16" else f" · KV {self.plan.kv_type}"
        return (
            f"{plan.model.name} · template {chat.template.name} · context {chat.engine.n_ctx}"
            f"{kv} · {where}, {plan.threads} threads · memory {memory}"
        )

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
        self.engine.close()


def _templates(plan: loader.ModelPlan, engine: LlamaEngine) -> Callable[[str], Template]:
    """Template by name for this model: `gguf` is the file's own, the rest are built in."""

    def by_name(name: str) -> Template:
        return loader.make_template(loader.Choice(name, ""), plan.header, engine)

    return by_name


def open_chat(request: ChatRequest) -> ReadyChat:
    settings = request.settings
    plan = loader.plan(settings, request.model, request.fetch)
    engine = loader.load(plan, settings, request.verbose, vocab_only=request.tokenizer_only)
    try:
        templates = _templates(plan, engine)
        template = templates(plan.template.value)
        policy: TurnPolicy | None = SceneTurns(request.scene) if request.scene else None
        chat = Chat(
            engine,
            template,
            request.system if request.system is not None else (settings.system or None),
            settings.sampling,
            history=settings.history,
            model_name=plan.model.name,
            templates=templates,
            policy=policy,
        )
        ready = ReadyChat(chat, plan, engine, list(plan.notes))
        if settings.session_cache and request.session is not None:
            ready.cache_max_bytes = settings.session_cache_max_mb << 20
        if request.session is not None:
            ready.lock = _open_session(ready, request)
    except BaseException:
        engine.close()
        raise
    return ready


def _open_session(ready: ReadyChat, request: ChatRequest) -> SessionLock:
    """Lock the session file, tidy what a killed save left, resume it if it exists."""
    path = request.session
    assert path is not None
    lock = SessionLock(path)
    lock.acquire(request.lock_wait_s)
    try:
        for stale in remove_stale_temps(path.parent, path.name):
            ready.notes.append(f"removed {stale.name}, left by an interrupted save")
        if path.exists():
            saved = session_file.load(ready.chat, path)
            ready.notes.append(f"resumed {len(saved.turns)} exchange(s) from {path}")
            ready.notes += session_file.retokenized(saved, ready.chat)
            ready.notes += _apply_given(ready.chat, request.given)
            if ready.cache_max_bytes is not None:
                note = session_cache.load(ready.chat, path)
                ready.notes += [note] if note else []
    except BaseException:
        lock.release()
        raise
    return lock


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
