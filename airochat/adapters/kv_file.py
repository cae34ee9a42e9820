"""A KV cache saved beside a session (`chat.json.kv`): llama.cpp's serialized state for the
tokens it holds, behind a header that says what it belongs to.

llama.cpp's own session files do not guard against loading a state into another model, another
build or another context size; this header does: a fingerprint (model identity, llama.cpp
version, context size, KV types, RoPE), the token ids, and one sha256 over the token ids and
the state together, so a file truncated, with one byte flipped, or with another chat's state
under this chat's tokens is refused, never loaded. Reading is bounded: a regular file only (a
FIFO would block for ever), a state no bigger than the file, token ids that are ids; any fault
is a `KvFileError` (one line, the chat read again).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from airochat.adapters.storage import StorageError, discard_temp, fsync_dir, os_error_reason
from airochat.errors import AirochatError

MAGIC = b"AIROCHAT-KV 2\n"
OLD_MAGICS = (b"AIROCHAT-KV 1\n",)
MAX_HEADER = 64 << 20
MAX_TOKEN_ID = (1 << 31) - 1  # llama_token is an int32


class KvFileError(AirochatError):
    """Why a saved cache cannot be used (the chat is then read again)."""


@dataclass(frozen=True)
class SavedCache:
    tokens: list[int]
    state: bytes


def kv_path(session: Path) -> Path:
    return session.with_name(session.name + ".kv")


def _digest(tokens: list[int], state: bytes) -> str:
    """One sha256 over the token ids and the state: neither can be swapped alone."""
    h = hashlib.sha256(json.dumps(tokens, separators=(",", ":")).encode())
    h.update(b"\n")
    h.update(state)
    return h.hexdigest()


def write_kv(path: Path, fingerprint: dict[str, Any], tokens: list[int], state: bytes) -> int:
    """Write atomically (temp file, fsync, rename), readable by the user only; bytes written."""
    header = {
        "fingerprint": fingerprint,
        "tokens": tokens,
        "state_bytes": len(state),
        "sha256": _digest(tokens, state),
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
    except BaseException:
        discard_temp(tmp)
        raise
    return len(head) + len(state)


def _open_regular(path: Path) -> BinaryIO:
    """The file for reading, refused unless it is a regular file (checked on the open file,
    without blocking: a FIFO never hangs the start)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise KvFileError("not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    with _open_regular(path) as fh:
        magic = fh.read(len(MAGIC))
        if magic in OLD_MAGICS:
            raise KvFileError("written by an older airochat")
        if magic != MAGIC:
            raise KvFileError("not an airochat cache file")
        line = fh.readline(MAX_HEADER)
        if not line.endswith(b"\n"):
            raise KvFileError("damaged (header too long or cut)")
        header = json.loads(line)
        if not isinstance(header, dict):
            raise KvFileError("damaged (header)")
        want = header.get("state_bytes")
        left = os.fstat(fh.fileno()).st_size - fh.tell()
        if type(want) is not int or want < 0:
            raise KvFileError("damaged (state size)")
        if want > left:
            raise KvFileError("truncated")
        return header, fh.read(want + 1)


def read_kv(path: Path, fingerprint: dict[str, Any]) -> SavedCache:
    """The saved cache, if it is whole and belongs to this model and context."""
    try:
        header, state = _read(path)
    except KvFileError:
        raise
    except (OSError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise KvFileError(f"unreadable ({type(exc).__name__})") from None
    if header.get("fingerprint") != fingerprint:
        raise KvFileError(_mismatch(header.get("fingerprint"), fingerprint))
    if len(state) != header["state_bytes"]:
        raise KvFileError("truncated" if len(state) < header["state_bytes"] else "damaged (size)")
    tokens = header.get("tokens")
    if not isinstance(tokens, list) or not all(
        type(t) is int and 0 <= t <= MAX_TOKEN_ID for t in tokens
    ):
        raise KvFileError("damaged (token list)")
    if _digest(tokens, state) != header.get("sha256"):
        raise KvFileError("damaged (checksum mismatch)")
    return SavedCache(tokens, state)


def _mismatch(theirs: Any, ours: dict[str, Any]) -> str:
    if not isinstance(theirs, dict):
        return "damaged (no fingerprint)"
    for key in ours:
        if theirs.get(key) != ours[key]:
            return f"made with another {key.replace('_', ' ')}"
    return "made with other settings"
