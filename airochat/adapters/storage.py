"""Files that must never be half-written: temp file, fsync, rename; private to the user.

Temporary files are named `.{name}.{pid}.tmp`, so one left by a process that was killed
mid-save can be told from one being written right now, and removed at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from pathlib import Path
from typing import Any

from airochat.errors import AirochatError

# A session of a few thousand turns is a few MB; anything near this is not one of ours.
MAX_JSON_BYTES = 32 << 20


class StorageError(AirochatError):
    pass


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def os_error_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "not allowed to write there"
    return exc.strerror or str(exc)


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write all of `text` or nothing: a crash mid-save leaves the previous file intact. The
    directory must exist (a mistyped path is not silently created)."""
    path = path.expanduser()
    if not path.parent.is_dir():
        raise StorageError(f"cannot save {path}: no such directory {path.parent}")
    tmp = _temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)  # the rename itself survives a power cut
    except OSError as exc:
        discard_temp(tmp)
        raise StorageError(f"cannot save {path}: {os_error_reason(exc)}") from None
    except UnicodeEncodeError:
        discard_temp(tmp)
        raise StorageError(f"cannot save {path}: text that is not valid Unicode") from None
    except BaseException:
        discard_temp(tmp)
        raise


def discard_temp(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # on a read-only disk even this fails
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def read_text_bounded(path: Path, limit: int, what: str = "file") -> str:
    """A regular file's UTF-8 text, refused past `limit` bytes (checked before reading)."""
    path = path.expanduser()
    try:
        if not path.is_file():
            reason = "no such file" if not path.exists() else "not a regular file"
            raise StorageError(f"{reason}: {path}")
        if path.stat().st_size > limit:
            raise StorageError(
                f"{path} is {path.stat().st_size / 2**20:.0f} MiB: too big for a {what} "
                f"(the limit is {limit / 2**20:.0f} MiB)"
            )
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    text = read_text_bounded(path, limit, "session file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StorageError(
            f"{path} is corrupt or truncated (invalid JSON at line {exc.lineno}); left untouched"
        ) from None
    except RecursionError:
        raise StorageError(f"{path} is nested too deeply to be a session file") from None


def private_file(path: Path) -> Path:
    """Create `path` (and its folder) readable by the user only, if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: Path, name: str, suffix: str = "tmp") -> list[Path]:
    """Temp files `.{name}.{pid}.{suffix}` whose writer is gone (killed mid-save): removed."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.{re.escape(suffix)}$")
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    for entry in entries:
        m = pattern.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
