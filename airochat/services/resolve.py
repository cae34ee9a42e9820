"""What a MODEL argument names: a local file, a catalog alias, or a Hub repo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airochat.adapters import hub, locations
from airochat.adapters.packaged_model import packaged_model_path
from airochat.domain.catalog import Catalog, CatalogEntry
from airochat.errors import ModelNotFoundError
from airochat.services.pull import HubRef, find_cached, parse_ref


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    entry: CatalogEntry | None = None


def load_catalog() -> Catalog:
    return Catalog.load(locations.data_file("models.txt"), locations.config_dir() / "models.txt")


Fetch = Callable[[HubRef], Path]


def resolve(ref: str, catalog: Catalog, fetch: Fetch | None = None) -> ResolvedModel:
    """What `ref` names, as a local file. Hub models come from the HF cache (verified); when
    missing they are downloaded through `fetch`, or the error says how to get them."""
    path = Path(ref).expanduser()
    if path.is_file():
        return ResolvedModel(name=path.name, path=path)
    if path.is_dir():
        raise ModelNotFoundError(f"{ref} is a directory; give the path of a .gguf file")
    entry = catalog.get(ref.partition(":")[0])
    if entry is not None and entry.engine:
        raise ModelNotFoundError(server_only(entry))
    if entry is not None and entry.package:
        model_path = packaged_model_path(entry.package, locations.cache_dir())
        return ResolvedModel(entry.alias, model_path, entry)
    hub_ref = None if ref.startswith((".", "/", "~")) else parse_ref(ref, catalog)
    if hub_ref is not None:
        return _from_hub(hub_ref, fetch)
    if ref.endswith((".gguf", ".bin")) or "/" in ref:
        raise ModelNotFoundError(f"no such file: {ref}")
    known = ", ".join(e.alias for e in catalog.entries()[:3])
    raise ModelNotFoundError(f"unknown model {ref!r}: not a file, not in models.txt (e.g. {known})")


def server_only(entry: CatalogEntry) -> str:
    """How to chat with weights made for GPU servers (vLLM), and the local alternative."""
    local = (
        f"\n  or run the same model here as GGUF: airochat run {entry.local}" if entry.local else ""
    )
    return (
        f"{entry.alias} is AWQ/GPTQ weights for GPU servers, not a model llama.cpp runs. To "
        "chat with it:\n"
        f"  on a machine with an NVIDIA GPU: vllm serve {entry.source} --quantization awq "
        f"--max-model-len {entry.ctx or 4096}\n"
        f"  here: airochat run {entry.alias} --server http://THAT-MACHINE:8000"
        + (local if entry.local else "")
    )


def _from_hub(ref: HubRef, fetch: Fetch | None) -> ResolvedModel:
    name = ref.entry.alias if ref.entry else ref.repo
    cached = find_cached(ref)
    if cached is not None:
        return ResolvedModel(name, cached, ref.entry)
    if hub.offline():
        raise ModelNotFoundError(
            f"{ref.label()} is not downloaded and the Hub is off (HF_HUB_OFFLINE): "
            f"run `airochat pull {ref.label()}` when online"
        )
    if fetch is None:
        raise ModelNotFoundError(
            f"{ref.label()} is not downloaded: run `airochat pull {ref.label()}` (or pass --yes)"
        )
    return ResolvedModel(name, fetch(ref), ref.entry)
