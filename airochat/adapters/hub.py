"""The Hugging Face Hub through huggingface_hub: list a repo's model files, download into the
shared HF cache (so llama.cpp `-hf` and other tools see the same files), verify sha256.

huggingface_hub checks only the size of a download; we hash every model file against the Hub's
LFS sha256 and record the result. A file is used only once it has been verified: a blob that
failed is deleted, and one never checked (downloaded by another tool, or before a crash) is
hashed before its first use, offline too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airochat.errors import AirochatError, ModelNotFoundError


class HubError(AirochatError):
    pass


class VerificationError(HubError):
    pass


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # the LFS object id; None for small non-LFS files


def _check_path(path: str) -> None:
    if path.startswith(("/", "\\")) or ".." in Path(path).parts or ":" in path.split("/")[0]:
        raise HubError(f"refusing file name {path!r}: absolute or climbing out of the repo")


@contextmanager
def hub_errors(repo: str) -> Iterator[None]:
    """huggingface_hub's exceptions as one-line messages that say what to do."""
    from huggingface_hub import errors as e
    from huggingface_hub.utils import logging as hf_logging

    if not os.environ.get("AIROCHAT_VERBOSE"):
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # our error says it

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
        raise HubError(f"the Hub answered an error for {repo}: {exc}") from None
    except OSError as exc:  # connection refused, DNS, timeouts (httpx errors are OSErrors too?)
        raise HubError(f"cannot reach the Hub for {repo}: {exc}") from None


def list_files(repo: str, suffixes: tuple[str, ...] = (".gguf",)) -> list[RemoteFile]:
    from huggingface_hub import HfApi

    with hub_errors(repo):
        try:
            entries = list(HfApi().list_repo_tree(repo, recursive=True))
        except Exception as exc:  # httpx transport errors are not OSErrors
            if type(exc).__module__.startswith(("httpx", "httpcore")):
                raise HubError(f"cannot reach the Hub for {repo}: {exc}") from None
            raise
    out = []
    for entry in entries:
        path = getattr(entry, "path", "")
        if not path.lower().endswith(suffixes) or not hasattr(entry, "size"):
            continue
        _check_path(path)
        lfs = getattr(entry, "lfs", None)
        out.append(RemoteFile(path, int(entry.size), lfs.sha256 if lfs else None))
    return out


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def check_disk(needed: int) -> None:
    cache = hub_cache()
    probe = cache
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + (256 << 20):
        raise HubError(
            f"not enough disk space in {cache}: the download needs {needed / 2**30:.2f} GiB, "
            f"{free / 2**30:.2f} GiB free"
        )


def _tqdm_class() -> Any:
    """huggingface_hub reports progress through a tqdm class: tqdm's rich flavour, on stderr,
    so `ask` output on stdout stays clean."""
    import warnings

    from rich.console import Console
    from tqdm import TqdmExperimentalWarning
    from tqdm.rich import tqdm_rich

    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)

    class StderrRichTqdm(tqdm_rich):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("options", {"console": Console(stderr=True)})
            super().__init__(*args, **kwargs)

    return StderrRichTqdm


def download(repo: str, file: RemoteFile, verified_dir: Path, progress: bool = True) -> Path:
    """Fetch into the HF cache (resuming a partial download), then verify and record."""
    from huggingface_hub import hf_hub_download

    _check_path(file.path)
    with hub_errors(repo):
        try:
            local = hf_hub_download(repo, file.path, tqdm_class=_tqdm_class() if progress else None)
        except Exception as exc:
            if type(exc).__module__.startswith(("httpx", "httpcore")):
                raise HubError(f"download of {file.path} failed: {exc}; run pull again") from None
            raise
    path = Path(local)
    if file.sha256:
        verify(path, file.sha256, verified_dir)
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, expected: str, verified_dir: Path) -> None:
    """Hash the file; on mismatch delete it (blob and link) so it can never be used."""
    marker = verified_dir / expected
    blob = path.resolve()
    if marker.exists() and marker.read_text().strip() == str(blob):
        return
    actual = sha256_of(blob)
    if actual != expected:
        blob.unlink(missing_ok=True)
        if path.is_symlink():
            path.unlink()
        raise VerificationError(
            f"{path.name} failed verification (sha256 {actual[:12]}..., the Hub says "
            f"{expected[:12]}...); deleted it: run pull again"
        )
    verified_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(blob))


def cached_repo_files(repo: str) -> list[Path]:
    """Model files of `repo` already in the HF cache (newest snapshot first)."""
    root = hub_cache() / f"models--{repo.replace('/', '--')}" / "snapshots"
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


def ensure_verified(path: Path, verified_dir: Path) -> Path:
    """A cached file may be used only once verified: blobs of LFS files are named by their
    sha256, so a file never checked is hashed now (and deleted if it does not match)."""
    blob = path.resolve()
    if not blob.exists():
        raise ModelNotFoundError(f"{path} is a broken link in the HF cache; run pull again")
    name = blob.name
    if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        verify(path, name, verified_dir)
    return path


def remove(paths: list[Path]) -> int:
    """Delete cached files (snapshot links and blobs no other snapshot uses); bytes freed."""
    freed = 0
    for link in paths:
        blob = link.resolve()
        link.unlink(missing_ok=True)
        repo_dir = blob.parent.parent
        still_used = any(
            p.is_symlink() and p.resolve() == blob for p in (repo_dir / "snapshots").rglob("*")
        )
        if blob.exists() and not still_used:
            freed += blob.stat().st_size
            blob.unlink()
    return freed


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "ON")
