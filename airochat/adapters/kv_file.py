"""A KV cache saved beside a session (`chat.json.kv`): llama.cpp's serialized state for the
tokens it holds, behind a header that says what it belongs to.

llama.cpp's own session files do not guard against loading a state into another model, another
build or another context size; this header does: a fingerprint (model identity, llama.cpp
version, context size, KV types, RoPE), the token ids, and the sha256 of the state, so a file
truncated or with one byte flipped is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airochat.adapters.storage import StorageError, discard_temp, fsync_dir, os_error_reason
from airochat.errors import AirochatError

MAGIC = b"AIROCHAT-KV 1\n"
MAX_HEADER = 64 << 20


class KvFileError(AirochatError):
    """Why a saved cache cannot be used (the chat is then read again)."""


@dataclass(frozen=True)
class SavedCache:
    tokens: list[int]
    state: bytes


def kv_path(session: Path) -> Path:
    return session.with_name(session.name + ".kv")


def write_kv(path: Path, fingerprint: dict[str, Any], tokens: list[int], state: bytes) -> int:
    """Write atomically (temp file, fsync, rename), readable by the user only; bytes written."""
    header = {
        "fingerprint": fingerprint,
        "tokens": tokens,
        "state_bytes": len(state),
        "state_sha256": hashlib.sha256(state).hexdigest(),
    }
    head = MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
            fh.write(state)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        discard_temp(tmp)
        raise StorageError(f"cannot save {path}: {os_error_reason(exc)}") from None
    return len(head) + len(state)


def read_kv(path: Path, fingerprint: dict[str, Any]) -> SavedCache:
    """The saved cache, if it is whole and belongs to this model and context."""
    try:
        with path.open("rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                raise KvFileError("not an airochat cache file")
            line = fh.readline(MAX_HEADER)
            header = json.loads(line)
            state = fh.read(int(header["state_bytes"]) + 1)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, KvFileError):
            raise
        raise KvFileError(f"unreadable ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("fingerprint") != fingerprint:
        theirs = header.get("fingerprint") if isinstance(header, dict) else None
        raise KvFileError(_mismatch(theirs, fingerprint))
    if len(state) != header["state_bytes"]:
        raise KvFileError("truncated")
    if hashlib.sha256(state).hexdigest() != header.get("state_sha256"):
        raise KvFileError("damaged (checksum mismatch)")
    tokens = header.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise KvFileError("damaged (token list)")
    return SavedCache(tokens, state)


def _mismatch(theirs: Any, ours: dict[str, Any]) -> str:
    if not isinstance(theirs, dict):
        return "damaged (no fingerprint)"
    for key in ours:
        if theirs.get(key) != ours[key]:
            return f"made with another {key.replace('_', ' ')}"
    return "made with other settings"
