"""The model's KV cache kept with a chat (a session file's FILE.kv), so a resumed chat -- in the
REPL or from `ask --session` in a script -- reads only its new turn instead of the whole chat.

The chat's own record (the JSON) stays the source of truth: a cache that is missing, damaged,
from another model, build or context size, or bigger than the configured cap is ignored with
one line, and the chat is read again as before.
"""

from __future__ import annotations

from pathlib import Path

from airochat.adapters.kv_file import KvFileError, read_kv, write_kv
from airochat.adapters.storage import StorageError
from airochat.domain.engine import KeepsCache
from airochat.services.chat import Chat


def save(chat: Chat, path: Path, max_bytes: int) -> str | None:
    """Write the cache to `path`; a note when it was not written (too big, failed)."""
    engine = chat.engine
    if not isinstance(engine, KeepsCache):
        return None
    tokens = engine.cached_tokens()
    if not tokens:
        return None
    state = engine.cache_state()
    if len(state) > max_bytes:
        path.unlink(missing_ok=True)  # an older, smaller one would no longer match anyway
        return (
            f"the model's cache is {len(state) >> 20} MiB, over session_cache_max_mb "
            f"({max_bytes >> 20}): not saved; the next resume reads the chat again"
        )
    try:
        write_kv(path, engine.cache_fingerprint(), tokens, state)
    except StorageError as exc:
        return str(exc)
    return None


def load(chat: Chat, path: Path) -> str | None:
    """Load the saved cache if it fits this chat; one line saying what happened."""
    engine = chat.engine
    if not isinstance(engine, KeepsCache) or not path.exists():
        return None
    try:
        saved = read_kv(path, engine.cache_fingerprint())
    except KvFileError as exc:
        return f"ignored {path.name}: {exc}; the chat is read again"
    chat_tokens = chat.conversation.tokens()
    shared = _shared_prefix(saved.tokens, chat_tokens)
    if shared == 0:
        return f"ignored {path.name}: it holds another chat; the chat is read again"
    try:
        restored = engine.restore_cache(saved.tokens, saved.state)
    except (ValueError, OverflowError, MemoryError):
        restored = False
    if not restored:
        return f"ignored {path.name}: llama.cpp refused it; the chat is read again"
    return f"loaded the model's cache ({shared} of {len(chat_tokens)} tokens)"


def size(path: Path) -> int | None:
    return path.stat().st_size if path.exists() else None


def _shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
