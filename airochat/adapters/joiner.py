"""Joining a split quant into the one file llama.cpp loads: raw byte parts concatenated, or
zip volumes concatenated and their single member extracted (the standard library's zipfile,
zip64 included). Streamed -- a 40 GB model never passes through memory -- and hashed as it is
written; free space is checked before anything is written; the result is written to a
temporary name, checked, and renamed, so a half-joined or unchecked file is never taken for the
model: a kill at any moment leaves either no joined file or one already recorded as whole."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

from airochat.adapters.storage import discard_temp
from airochat.errors import AirochatError

CHUNK = 4 << 20
MARGIN = 256 << 20

Progress = Callable[[int, int], None]
# Called with the whole temporary file and its sha256 before it takes the target's name; it
# raises to refuse it (the temporary file is then removed).
Accept = Callable[[Path, str], None]


class JoinError(AirochatError):
    pass


def _free(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def _check_space(directory: Path, needed: int, what: str) -> None:
    free = _free(directory)
    if free < needed + MARGIN:
        raise JoinError(
            f"not enough disk space to {what}: it needs {needed / 2**30:.2f} GiB, "
            f"{free / 2**30:.2f} GiB free in {directory}"
        )


def _copy(
    sources: Iterable[IO[bytes]], out: BinaryIO, total: int, progress: Progress | None
) -> str:
    h = hashlib.sha256()
    done = 0
    for src in sources:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    out.flush()
    os.fsync(out.fileno())
    return h.hexdigest()


def _into(target: Path, write: Callable[[BinaryIO], str], accept: Accept | None = None) -> str:
    """Write through a temporary file renamed into place when whole (and accepted)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as out:
            digest = write(out)
        if accept is not None:
            accept(tmp, digest)
        os.replace(tmp, target)
    except OSError as exc:
        discard_temp(tmp)
        raise JoinError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        discard_temp(tmp)
        raise
    return digest


def join_bytes(
    parts: list[Path], target: Path, progress: Progress | None = None, accept: Accept | None = None
) -> str:
    """Concatenate `parts` in order into `target`; its sha256."""
    total = sum(p.stat().st_size for p in parts)
    _check_space(target.parent, total, f"join {target.name}")

    def opened() -> Iterator[IO[bytes]]:  # one part open at a time, whatever their number
        for part in parts:
            with part.open("rb") as fh:
                yield fh

    def write(out: BinaryIO) -> str:
        return _copy(opened(), out, total, progress)

    return _into(target, write, accept)


def extract_volumes(
    volumes: list[Path],
    target: Path,
    progress: Progress | None = None,
    accept: Accept | None = None,
) -> str:
    """Join zip volumes and extract the one file they hold into `target`; its sha256."""
    archive = target.with_name(f".{target.name}.{os.getpid()}.zip")
    try:
        join_bytes(volumes, archive)
        return _extract_single(archive, target, progress, accept)
    finally:
        discard_temp(archive)


def _extract_single(
    archive: Path, target: Path, progress: Progress | None, accept: Accept | None
) -> str:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise JoinError(
                    f"{target.name}: the zip volumes hold {len(members)} files, not one"
                )
            member = members[0]
            _check_space(target.parent, member.file_size, f"extract {member.filename}")

            def write(out: BinaryIO) -> str:
                with zf.open(member) as src:
                    return _copy([src], out, member.file_size, progress)

            return _into(target, write, accept)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise JoinError(
            f"{target.name}: the zip volumes do not make a readable zip ({exc})"
        ) from None
