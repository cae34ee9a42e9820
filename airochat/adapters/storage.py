"""Files that must never be half-written: temp file, fsync, rename; private to the user."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from airochat.errors import AirochatError


class StorageError(AirochatError):
    pass


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write all of `text` or nothing: a crash mid-save leaves the previous file intact."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StorageError(f"cannot save {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def read_json(path: Path) -> Any:
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StorageError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StorageError(
            f"{path} is corrupt or truncated (invalid JSON at line {exc.lineno}); left untouched"
        ) from None


def private_file(path: Path) -> Path:
    """Create `path` (and its folder) readable by the user only, if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    return path
