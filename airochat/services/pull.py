"""`airochat pull` and friends: which file a Hub model name means, fetching it, finding it later.

MODEL forms: `alias[:QUANT]`, `owner/repo[:QUANT]` (QUANT case-insensitive), `owner/repo/file.gguf`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airochat.adapters import hub, joiner, locations
from airochat.adapters.gguf_file import whole_file_problem
from airochat.adapters.gpu import free_vram
from airochat.adapters.machine import available_memory
from airochat.domain.catalog import Catalog, CatalogEntry
from airochat.domain.memory import GiB
from airochat.domain.quants import (
    QuantOption,
    group_by_quant,
    kv_bytes_guess,
    params_from_name,
    quant_of,
    rank,
)
from airochat.domain.quants import pick as pick_quant
from airochat.domain.splits import model_name
from airochat.domain.splits import problem as split_problem
from airochat.errors import ModelNotFoundError, UsageError
from airochat.services.convert import converted_path

_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class HubRef:
    repo: str
    quant: str | None = None
    filename: str | None = None
    entry: CatalogEntry | None = None

    @property
    def suffix(self) -> str:
        return ".bin" if self.entry and self.entry.format == "ggml" else ".gguf"

    def label(self) -> str:
        name = self.entry.alias if self.entry else self.repo
        return f"{name}:{self.quant}" if self.quant else name


def parse_ref(ref: str, catalog: Catalog) -> HubRef | None:
    """A Hub reference, or None when `ref` names no Hub model."""
    name, _, quant = ref.partition(":")
    tag = quant.upper() or None
    entry = catalog.get(name)
    if entry is not None:
        return HubRef(entry.repo, tag, None, entry) if entry.repo else None
    if _REPO.match(name):
        return HubRef(name, tag, None, catalog.by_repo(name))
    parts = ref.split("/")
    if len(parts) >= 3 and ref.lower().endswith((".gguf", ".bin")):
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        hub.check_path(filename)
        return HubRef(repo, quant_of(filename), filename, catalog.by_repo(repo))
    return None


def _verified_dir() -> Path:
    return locations.cache_dir() / "verified"


def memory_budget(gpu: bool) -> int:
    """Bytes a model file may take here: free RAM (+ free VRAM when offloading)."""
    vram = free_vram() if gpu else None
    return available_memory() + (vram or 0)


def choose(ref: HubRef, files: list[hub.RemoteFile], gpu: bool) -> tuple[QuantOption, str]:
    options = group_by_quant({f.path: f.size for f in files})
    if ref.quant and ref.quant not in options:
        _refuse_split(ref.repo, ref.quant, files)
    if not options:
        kind = "GGML .bin" if ref.suffix == ".bin" else "GGUF"
        raise ModelNotFoundError(f"{ref.repo} has no {kind} model files")
    if ref.filename:
        for opt in options.values():
            if ref.filename in opt.files or ref.filename == opt.joined:
                return opt, f"{ref.filename} as named"
        raise ModelNotFoundError(f"{ref.repo} has no file {ref.filename}")
    if ref.quant:
        if ref.quant in options:
            return options[ref.quant], f"{ref.quant} as asked"
        have = ", ".join(options[q].label() for q in sorted(options))
        raise UsageError(f"{ref.repo} has no {ref.quant} quant; it has: {have}")
    ctx = ref.entry.ctx if ref.entry and ref.entry.ctx else 4096
    params = params_from_name(ref.repo) or 7.0
    reserve = kv_bytes_guess(params, ctx) + GiB  # KV cache at the model's context + headroom
    budget = memory_budget(gpu) - reserve
    chosen, why = pick_quant(options, budget)
    if chosen is None:
        raise UsageError(f"{ref.repo}: {why}; pick one with :QUANT")
    return chosen, why + f" with room for a {ctx}-token KV cache"


def _refuse_split(repo: str, quant: str, files: list[hub.RemoteFile]) -> None:
    """A quant listed only in parts that cannot make its file: say why."""
    parts = [f.path for f in files if quant_of(model_name(f.path)) == quant]
    why = split_problem(parts) if parts else None
    if why:
        raise hub.HubError(f"{repo}: the parts of {quant} do not make one file: {why}")


@dataclass(frozen=True)
class Pulled:
    path: Path  # the first shard: llama.cpp finds the others beside it
    option: QuantOption
    reason: str
    downloaded: int  # bytes fetched now (0 when everything was cached)


Confirm = Callable[[str], bool]


def _cached_copy(repo: str, file: hub.RemoteFile) -> Path | None:
    """The snapshot path of `file` in the cache (any snapshot), if its blob is there."""
    for path in hub.cached_repo_files(repo):
        if path.name == Path(file.path).name and path.resolve().exists():
            return path
    return None


def _keep_or_fetch(repo: str, file: hub.RemoteFile, force: bool) -> Path | None:
    """A cached copy that may be used as is, or None when `file` must be downloaded. A copy
    verified before is never thrown away because the Hub now says another hash: that is
    reported, and only --force replaces it."""
    local = _cached_copy(repo, file)
    if local is None or file.sha256 is None:
        return local
    blob = local.resolve()
    if blob.name == file.sha256:
        try:
            hub.verify(local, file.sha256, _verified_dir())
            return local
        except hub.VerificationError as exc:
            hub.NOTE(f"{exc}; fetching it again")
            blob.unlink(missing_ok=True)
            return None
    if force:
        return None
    marker = hub.read_marker(_verified_dir(), blob.name) if hub.is_sha256(blob.name) else None
    when = f" (verified on {marker.verified_at[:10]})" if marker else ""
    raise hub.HubError(
        f"{file.path}: the Hub now says sha256 {file.sha256[:12]}..., your copy is "
        f"{blob.name[:12]}...{when}; keeping yours -- `airochat pull --force` replaces it"
    )


def pull(
    ref: HubRef,
    gpu: bool,
    progress: bool = True,
    confirm: Confirm | None = None,
    force: bool = False,
    keep_parts: bool = False,
) -> Pulled:
    files = hub.list_files(ref.repo, (ref.suffix,))
    option, reason = choose(ref, files, gpu)
    joined = _cached_joined(ref.repo, option) if not force else None
    if joined is not None:  # a split quant joined before: its parts are not needed again
        return _finish(ref, joined, option, reason, 0)
    by_path = {f.path: f for f in files}
    wanted = [by_path[p] for p in option.files]
    kept = {f.path: _keep_or_fetch(ref.repo, f, force) for f in wanted}
    missing = [f for f in wanted if kept[f.path] is None]
    need = sum(f.size for f in missing) + (option.size if option.joined else 0)
    if missing:
        hub.check_disk(need)
        if confirm is not None and not confirm(
            f"Download {ref.repo} {option.label()} ({need / GiB:.2f} GiB)?"
        ):
            raise UsageError("download cancelled")
    paths = [kept[f.path] or hub.download(ref.repo, f, _verified_dir(), progress) for f in wanted]
    model = _join(paths, option, keep_parts) if option.joined else paths[0]
    return _finish(ref, model, option, reason, need)


def _finish(ref: HubRef, model: Path, option: QuantOption, reason: str, need: int) -> Pulled:
    if ref.suffix == ".bin":  # legacy GGML: verified above, now converted beside it
        from airochat.services.convert import convert_file, converted_path, options_for

        target = converted_path(model)
        if not target.exists():
            convert_file(model, target, options_for(ref.entry))
        return Pulled(target, option, reason + "; converted from GGML to GGUF", need)
    return Pulled(model, option, reason, need)


def _cached_joined(repo: str, option: QuantOption) -> Path | None:
    """The file a split quant's parts were joined into earlier, if it is here and whole."""
    if not option.joined:
        return None
    name = Path(option.joined).name
    for path in hub.cached_repo_files(repo):
        if path.name == name:
            try:
                hub.ensure_verified(path, _verified_dir())
            except hub.VerificationError as exc:
                hub.NOTE(f"{exc}; joining it again")
                path.unlink(missing_ok=True)
                continue
            why = whole_file_problem(path) if path.suffix == ".gguf" else None
            if why is None:
                return path
            hub.NOTE(f"{path.name} was joined from parts that do not make it whole ({why})")
            hub.remove([path])
    return None


def _join(parts: list[Path], option: QuantOption, keep_parts: bool) -> Path:
    """Each part was verified as it came; now one file, hashed as it is written. The parts
    go afterwards (unless --keep-parts), so the disk holds the model once."""
    assert option.joined is not None
    target = parts[0].parent / Path(option.joined).name
    hub.NOTE(f"joining the {len(parts)} parts of {option.quant} into {target.name}")

    def accept(joined: Path, digest: str) -> None:
        # Checked and recorded before it takes the model's name: a kill at any moment leaves
        # no joined file, or one known whole.
        why = whole_file_problem(joined) if target.suffix == ".gguf" else None
        if why is not None:  # each part was verified, but they do not make one whole model
            raise hub.HubError(
                f"the {len(parts)} parts of {option.quant} do not make a whole model ({why}); "
                "the repo's listing is incomplete or mixes files -- the parts are kept"
            )
        hub.record_joined(target, digest, _verified_dir(), written=joined)

    if option.scheme == "zip":
        joiner.extract_volumes(parts, target, accept=accept)
    else:
        joiner.join_bytes(parts, target, accept=accept)
    if not keep_parts:
        hub.remove(parts)
    return target


def find_cached(ref: HubRef) -> Path | None:
    """A verified local copy of what `ref` names, without asking the Hub."""
    files = hub.cached_repo_files(ref.repo)
    if ref.suffix == ".bin":  # use the converted GGUF, never the legacy file itself
        files = [f for f in files if f.suffix == ".bin" and converted_path(f).exists()]
    else:
        files = [f for f in files if f.suffix == ref.suffix]
    if ref.filename:
        files = [f for f in files if f.name == Path(ref.filename).name]
    elif ref.quant:
        files = [f for f in files if quant_of(f.name) == ref.quant]
    if not files:
        return None
    options = group_by_quant({str(f): 0 for f in files})
    default = ref.entry.quant.upper() if ref.entry and ref.entry.quant else None
    # the catalog's default quant when it is here, else the best quality that is here
    best = options.get(default or "") or min(options.values(), key=lambda o: rank(o.quant))
    paths = [Path(p) for p in best.files]
    for p in paths:
        hub.ensure_verified(p, _verified_dir())
    return converted_path(paths[0]) if ref.suffix == ".bin" else paths[0]


def remove(ref: HubRef) -> tuple[int, int]:
    """Delete the cached files `ref` names (all quants when none is named): (files, bytes)."""
    files = [f for f in hub.cached_repo_files(ref.repo) if f.suffix == ref.suffix]
    files += hub.cached_parts(ref.repo)  # parts kept with --keep-parts
    if ref.filename:
        files = [f for f in files if model_name(f.name) == Path(ref.filename).name]
    elif ref.quant:
        files = [f for f in files if quant_of(model_name(f.name)) == ref.quant]
    if not files:
        raise ModelNotFoundError(f"{ref.label()} is not downloaded")
    freed = 0
    for f in files:
        converted = converted_path(f) if f.suffix == ".bin" else None
        if converted is not None and converted.exists():
            freed += converted.stat().st_size
            converted.unlink()
    return len(files), freed + hub.remove(files)
