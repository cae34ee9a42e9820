"""The Hugging Face Hub through huggingface_hub: list a repo's model files, download into the
shared HF cache (so llama.cpp `-hf` and other tools see the same files), verify sha256.

Downloads use huggingface_hub's own metadata call, headers (HF_TOKEN) and streaming `http_get`
(which resumes a dropped connection), but keep the partial file as `blobs/<sha256>.incomplete`
between runs: huggingface_hub 1.x+ deletes its per-process temp file on any failure, so a
40 GB download stopped at 39 GB would start again from zero. The finished blob goes where
huggingface_hub puts it (`blobs/`, a `snapshots/<commit>/` link, `refs/main`), under the same
lock file it takes, so both can share the cache.

huggingface_hub checks only sizes; every model file is hashed against the Hub's LFS sha256 and
the result recorded with the file's size and mtime. A recorded file that changed since is
hashed again before use; one that fails is reported as damaged, never used.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from airochat.adapters.storage import atomic_write_text
from airochat.domain.splits import model_name, part_of
from airochat.errors import AirochatError, ModelNotFoundError


class HubError(AirochatError):
    pass


class VerificationError(HubError):
    pass


# Where short progress notes go (retries, resumes): stderr, so stdout stays clean for scripts.
def _stderr_note(message: str) -> None:
    from airochat.domain.visible import visible

    print(visible(f"airochat: {message}"), file=sys.stderr, flush=True)


NOTE: Callable[[str], None] = _stderr_note


MAX_FILE_BYTES = 1 << 50  # 1 PiB: no model file is near it; a listed size past it is a lie


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # the LFS object id; None for small non-LFS files


def check_path(path: str) -> None:
    """A repo file name we are willing to write under the cache."""
    parts = PurePosixPath(path).parts
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or ".." in parts
        or ":" in parts[0]
        or any(ord(c) < 32 for c in path)
    ):
        raise HubError(f"refusing file name {path!r}: not a plain path inside the repo")


def _safe_name(path: str) -> bool:
    try:
        check_path(path)
    except HubError:
        return False
    return True


# -- errors, retries and the network ------------------------------------------------------------


class _RetryNotes(logging.Handler):
    """huggingface_hub retries 429/5xx and dropped connections with backoff (about 24 s in
    all) and says so only in its log: we say it on stderr, in one short line each."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "Retrying in" in text or "Rate limited" in text or "resume download" in text:
            first = text.splitlines()[-1].strip()
            NOTE(f"the Hub did not answer cleanly; {first[0].lower()}{first[1:]}")


_NOTES = _RetryNotes(logging.WARNING)


def _quiet_hub_log() -> None:
    from huggingface_hub.utils import logging as hf_logging

    if os.environ.get("AIROCHAT_VERBOSE"):
        return
    hf_logging.set_verbosity_warning()  # type: ignore[no-untyped-call]
    root = logging.getLogger("huggingface_hub")
    for handler in list(root.handlers):
        if handler is not _NOTES:
            root.removeHandler(handler)
    if _NOTES not in root.handlers:
        root.addHandler(_NOTES)
    root.propagate = False


_resolved: set[str] = set()


def _check_host() -> None:
    """A host that does not resolve fails at once, not after huggingface_hub's retries."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or ""
    if not host or host in _resolved:
        return
    try:
        socket.getaddrinfo(host, url.port or (443 if url.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise HubError(
            f"cannot reach the Hub: {host} does not resolve ({exc}); "
            "offline? (models already downloaded work with HF_HUB_OFFLINE=1)"
        ) from None
    _resolved.add(host)


def _disk_error(exc: OSError, needed: int | None) -> HubError:
    where = hub_cache()
    free = _free_bytes(where)
    need = f"it needs {needed / 2**30:.2f} GiB, " if needed else ""
    return HubError(f"the disk is full: {need}{free / 2**30:.2f} GiB free in {where}")


@contextmanager
def hub_errors(repo: str, needed: int | None = None) -> Iterator[None]:
    """huggingface_hub's exceptions as one-line messages that say what to do."""
    from huggingface_hub import errors as e

    _quiet_hub_log()
    _check_cache_dir()
    try:
        yield
    except e.GatedRepoError:
        raise HubError(
            f"{repo} is gated or private (401): accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except e.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"no such repo on the Hub: {repo} (404), or it is private (set HF_TOKEN)"
        ) from None
    except e.RevisionNotFoundError:
        raise ModelNotFoundError(f"{repo}: no such revision on the Hub") from None
    except e.EntryNotFoundError:
        raise ModelNotFoundError(f"{repo}: no such file on the Hub") from None
    except e.OfflineModeIsEnabled:
        raise HubError(f"{repo} is not downloaded and HF_HUB_OFFLINE is set") from None
    except e.HfHubHTTPError as exc:
        raise HubError(f"the Hub answered an error for {repo}: {_one_line(exc)}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_error(exc, needed) from None
        raise HubError(f"cannot reach the Hub for {repo}: {_one_line(exc)}") from None
    except Exception as exc:  # httpx transport errors are not OSErrors
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise HubError(f"cannot reach the Hub for {repo}: {_one_line(exc)}") from None
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# -- listing ------------------------------------------------------------------------------------


def list_files(repo: str, suffixes: tuple[str, ...] = (".gguf",)) -> list[RemoteFile]:
    """The repo's model files: names ending with one of `suffixes`, or parts of such a file
    (`X.gguf-split-a`, `X.gguf.part1of2`, `X.bin.zip.001`). Names that are not plain paths
    (absolute, climbing, backslashes) are left out: nothing could use them."""
    from huggingface_hub import HfApi

    with hub_errors(repo):
        _check_host()
        entries = list(HfApi().list_repo_tree(repo, recursive=True))
    out = []
    for entry in entries:
        path = getattr(entry, "path", "")
        if not model_name(path).lower().endswith(suffixes) or not hasattr(entry, "size"):
            continue
        if not _safe_name(path):
            NOTE(f"{repo}: skipped the file name {path!r} (not a plain path)")
            continue
        size = entry.size
        if type(size) is not int or not 0 <= size <= MAX_FILE_BYTES:
            NOTE(f"{repo}: skipped {path}: the Hub lists an impossible size ({size!r})")
            continue
        lfs = getattr(entry, "lfs", None)
        out.append(RemoteFile(path, size, lfs.sha256 if lfs else None))
    return out


# -- the cache ----------------------------------------------------------------------------------


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _check_cache_dir() -> None:
    from huggingface_hub import constants

    for name, value in (("HF_HOME", constants.HF_HOME), ("HF_HUB_CACHE", constants.HF_HUB_CACHE)):
        path = Path(value)
        for part in (path, *path.parents):
            if part.exists() and not part.is_dir():
                raise HubError(f"{name} is {value}, but {part} is a file, not a directory")


def repo_dir(repo: str) -> Path:
    return hub_cache() / f"models--{repo.replace('/', '--')}"


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk(needed: int) -> None:
    cache = hub_cache()
    free = _free_bytes(cache)
    if free < needed + (256 << 20):
        raise HubError(
            f"not enough disk space in {cache}: the download needs {needed / 2**30:.2f} GiB, "
            f"{free / 2**30:.2f} GiB free"
        )


@contextmanager
def _blob_lock(repo: str, etag: str) -> Iterator[None]:
    """huggingface_hub's own lock file for this blob (filelock uses flock too): two downloads
    of one file -- ours or another tool's -- never write it at once."""
    lock = hub_cache() / ".locks" / repo_dir(repo).name / f"{etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _link(repo: str, commit: str, path: str, blob: Path) -> Path:
    """The snapshot entry for `path` at `commit`, pointing at its blob, and refs/main."""
    root = repo_dir(repo)
    link = root / "snapshots" / commit / path
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))
    refs = root / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(commit)
    return link


# -- downloading --------------------------------------------------------------------------------


def _tqdm_class(progress: bool) -> Any:
    """huggingface_hub reports progress through a tqdm class: tqdm's rich flavour on stderr
    (stdout stays clean), plus a watchdog. A server that ignores Range requests answers a
    resume with the whole file again (huggingface_hub rewinds the bar); if it also keeps
    dropping the connection, huggingface_hub would loop for ever."""
    import warnings

    from rich.console import Console
    from tqdm import TqdmExperimentalWarning
    from tqdm.rich import tqdm_rich

    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)

    class WatchedTqdm(tqdm_rich):  # type: ignore[misc]
        restarts_allowed = 2

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("options", {"console": Console(stderr=True)})
            kwargs["disable"] = kwargs.get("disable") or not progress
            self.restarts = 0
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if n is not None and n < 0:
                self.restarts += 1
                if self.restarts > self.restarts_allowed:
                    raise HubError(
                        "the server ignores resume (Range) requests and keeps dropping the "
                        "connection: giving up; try again later"
                    )
            return super().update(n)  # type: ignore[no-any-return]

    return WatchedTqdm


def download(repo: str, file: RemoteFile, verified_dir: Path, progress: bool = True) -> Path:
    """Fetch `file` into the HF cache, resuming a partial download left by an earlier run,
    then verify it. Returns the snapshot path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    check_path(file.path)
    with hub_errors(repo, file.size):
        _check_host()
        meta = get_hf_file_metadata(hf_hub_url(repo, file.path))
        etag = (meta.etag or "").strip('"')
        if file.sha256 and etag != file.sha256:
            raise VerificationError(
                f"{file.path}: the Hub's listing says sha256 {file.sha256[:12]}... but the "
                f"file it serves says {etag[:12]}...; refusing it"
            )
        if not etag or not meta.commit_hash or "/" in etag:
            raise HubError(f"{file.path}: the Hub sent no usable ETag or commit for it")
        blob = repo_dir(repo) / "blobs" / etag
        with _blob_lock(repo, etag):
            if not blob.exists():
                _fetch(meta.location, blob, meta.size or file.size, progress, file.path)
            if file.sha256:  # before it is linked: a bad download never replaces a good link
                verify(blob, file.sha256, verified_dir, delete_bad=True)
        return _link(repo, meta.commit_hash, file.path, blob)


def _fetch(url: str, blob: Path, size: int, progress: bool, name: str) -> None:
    from huggingface_hub import constants
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils._headers import build_hf_headers

    # huggingface_hub reads the body 10 MB at a time: what an interrupted download keeps is
    # what was written, so smaller reads mean at most 1 MiB lost to a Ctrl-C.
    constants.DOWNLOAD_CHUNK_SIZE = 1 << 20
    partial = blob.with_name(blob.name + ".incomplete")  # kept on failure: the next run resumes
    blob.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if have > size:
        partial.unlink()
        have = 0
    check_disk(size - have)
    if have:
        NOTE(f"resuming {blob.name[:12]}... at {have / 2**20:.0f} of {size / 2**20:.0f} MiB")
    with partial.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        http_get(
            url,
            fh,
            resume_size=have,
            headers=build_hf_headers(),
            expected_size=size,
            displayed_filename=Path(name).name,
            tqdm_class=_tqdm_class(progress and sys.stderr.isatty()),
        )
    os.replace(partial, blob)


# -- verification -------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Verified:
    """A file checked against its sha256: which blob, and what it looked like then."""

    blob: str
    size: int
    mtime_ns: int
    verified_at: str

    def matches(self, blob: Path) -> bool:
        try:
            info = blob.stat()
        except OSError:
            return False
        return (str(blob), info.st_size, info.st_mtime_ns) == (
            self.blob,
            self.size,
            self.mtime_ns,
        )


def read_marker(verified_dir: Path, sha256: str) -> Verified | None:
    try:
        data = json.loads((verified_dir / sha256).read_text())
        return Verified(**data)
    except (OSError, ValueError, TypeError):
        return None  # none, damaged, or from an older airochat (a path only): hash again


def _write_marker(verified_dir: Path, sha256: str, blob: Path, written: Path | None = None) -> None:
    info = (written or blob).stat()  # a file about to be renamed to `blob` is that file
    marker = Verified(
        blob=str(blob),
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        verified_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    verified_dir.mkdir(parents=True, exist_ok=True)
    tmp = verified_dir / f".{sha256}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(marker.__dict__))
    os.replace(tmp, verified_dir / sha256)


def verify(path: Path, expected: str, verified_dir: Path, delete_bad: bool = False) -> None:
    """Hash the file unless a marker shows it unchanged since it was verified. A mismatch is
    an error; with `delete_bad` (a fresh download) the bad bytes are deleted too."""
    blob = path.resolve()
    marker = read_marker(verified_dir, expected)
    if marker is not None and marker.matches(blob):
        return
    actual = sha256_of(blob)
    if actual == expected:
        _write_marker(verified_dir, expected, blob)
        return
    (verified_dir / expected).unlink(missing_ok=True)
    if delete_bad:
        blob.unlink(missing_ok=True)
        if path.is_symlink():
            path.unlink()
        raise VerificationError(
            f"{path.name} failed verification (sha256 {actual[:12]}..., the Hub says "
            f"{expected[:12]}...); deleted it: run pull again"
        )
    when = f" (verified on {marker.verified_at[:10]})" if marker else ""
    raise VerificationError(
        f"{path.name} is damaged: its sha256 is {actual[:12]}..., it should be "
        f"{expected[:12]}...{when}; fetch it again with `airochat pull --force`"
    )


def is_sha256(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _joined_sha(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record_joined(path: Path, sha256: str, verified_dir: Path, written: Path | None = None) -> None:
    """A file airochat joined from verified parts: its hash beside it and in the markers, so
    it is checked like a blob from then on (a truncated join is caught as damaged).
    `written`: the joined file still under its temporary name, recorded before the rename."""
    atomic_write_text(_joined_sha(path), sha256 + "\n", mode=0o644)
    _write_marker(verified_dir, sha256, path, written)


def ensure_verified(path: Path, verified_dir: Path) -> Path:
    """A cached file may be used only once verified: blobs of LFS files are named by their
    sha256, joined files carry theirs beside them; a file never checked (or changed since) is
    hashed now."""
    blob = path.resolve()
    if not blob.exists():
        raise ModelNotFoundError(f"{path} is a broken link in the HF cache; run pull again")
    if is_sha256(blob.name):
        verify(path, blob.name, verified_dir)
    elif _joined_sha(path).exists():
        verify(path, _joined_sha(path).read_text().strip(), verified_dir)
    return path


def cached_repo_files(repo: str) -> list[Path]:
    """Model files of `repo` already in the HF cache (newest snapshot first)."""
    root = repo_dir(repo) / "snapshots"
    if not root.is_dir():
        return []
    snaps = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    # a .gguf beside a .bin of the same name is airochat's conversion, not a Hub file
    return [
        f
        for snap in snaps
        for f in sorted(snap.rglob("*"))
        if f.suffix == ".bin" or (f.suffix == ".gguf" and not f.with_suffix(".bin").exists())
    ]


def cached_parts(repo: str) -> list[Path]:
    """Parts of split quants in the cache (kept after joining with --keep-parts)."""
    root = repo_dir(repo) / "snapshots"
    if not root.is_dir():
        return []
    return [f for f in sorted(root.rglob("*")) if part_of(f.name) is not None]


def remove(paths: list[Path]) -> int:
    """Delete cached files (snapshot links and blobs no other snapshot uses); bytes freed.
    Linear: the links go first, then each repo's snapshots are walked once for what is
    still used."""
    blobs: dict[Path, set[Path]] = {}  # repo root -> the blobs of the removed links
    for link in paths:
        blob = link.resolve()
        _joined_sha(link).unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        blobs.setdefault(blob.parent.parent, set()).add(blob)
    freed = 0
    for root, gone in blobs.items():
        used = {p.resolve() for p in (root / "snapshots").rglob("*") if p.is_symlink()}
        for blob in gone - used:
            if blob.exists():
                freed += blob.stat().st_size
                blob.unlink()
    return freed


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "ON")
