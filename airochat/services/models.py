"""What a MODEL argument names: a local file, a catalog alias, or a Hub repo."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from airochat.adapters import locations
from airochat.adapters.packaged_model import packaged_model_path
from airochat.domain.catalog import Catalog, CatalogEntry
from airochat.errors import ModelNotFoundError


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    entry: CatalogEntry | None = None


def load_catalog() -> Catalog:
    return Catalog.load(locations.data_file("models.txt"), locations.config_dir() / "models.txt")


_HUB_REPO = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+)?$")
_HUB_FILE = re.compile(r"^[\w.-]+/[\w.-]+/.+\.gguf$", re.IGNORECASE)


def resolve(ref: str, catalog: Catalog) -> ResolvedModel:
    path = Path(ref).expanduser()
    if path.is_file():
        return ResolvedModel(name=path.name, path=path)
    if path.is_dir():
        raise ModelNotFoundError(f"{ref} is a directory; give the path of a .gguf file")
    entry = catalog.get(ref)
    if entry is not None and entry.package:
        model_path = packaged_model_path(entry.package, locations.cache_dir())
        return ResolvedModel(entry.alias, model_path, entry)
    if entry is not None or (
        not ref.startswith((".", "/", "~")) and (_HUB_REPO.match(ref) or _HUB_FILE.match(ref))
    ):
        repo = entry.repo if entry else ref
        raise ModelNotFoundError(
            f"{ref} names a Hub model ({repo}) and downloading is not built yet; "
            "pass the path of a local .gguf file"
        )
    if ref.endswith((".gguf", ".bin")) or "/" in ref:
        raise ModelNotFoundError(f"no such file: {ref}")
    known = ", ".join(e.alias for e in catalog.entries()[:3])
    raise ModelNotFoundError(f"unknown model {ref!r}: not a file, not in models.txt (e.g. {known})")
