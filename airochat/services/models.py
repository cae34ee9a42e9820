"""`airochat models`: the catalog and the downloaded models, with sizes and whether they fit."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from airochat.adapters import hub, locations
from airochat.adapters.packaged_model import packaged_model_place, packaged_model_size
from airochat.domain.catalog import CatalogEntry
from airochat.domain.memory import GiB
from airochat.domain.quants import BITS, group_by_quant, kv_bytes_guess, params_from_name
from airochat.errors import ModelNotFoundError
from airochat.services.pull import memory_budget
from airochat.services.resolve import load_catalog


def _fits(size: int | None, name: str, ctx: int, budget: int) -> bool | None:
    if not size:
        return None
    params = params_from_name(name) or 7.0
    return size + kv_bytes_guess(params, ctx or 4096) + GiB <= budget


def _size_on_disk(paths: list[Path]) -> int:
    return sum(p.resolve().stat().st_size for p in paths if p.exists())


def _catalog_row(e: CatalogEntry) -> dict[str, Any]:
    return {
        "alias": e.alias,
        "repo": e.source,
        "template": e.template,
        "ctx": e.ctx,
        "format": e.format,
        "engine": e.engine,
        "local": e.local,
        "verified_repo": e.verified,
        "rope": _rope(e),
    }


def _rope(e: CatalogEntry) -> dict[str, Any] | None:
    """The RoPE scaling the catalog says the model needs (`rope=linear:4`), else None."""
    return {"scaling": "linear", "factor": e.rope_scale} if e.rope_scale else None


def _server_row(e: CatalogEntry, base: dict[str, Any]) -> dict[str, Any]:
    """Weights for GPU servers: nothing to download here; the GGUF twin is the local route."""
    return {**base, "quant": "", "size": None, "downloaded": False, "fits": None, "path": None}


def _packaged_rows(e: CatalogEntry, base: dict[str, Any]) -> list[dict[str, Any]]:
    assert e.package is not None
    installed = importlib.util.find_spec(e.package.replace("-", "_")) is not None
    size = packaged_model_size(e.package) if installed else None
    path = _packaged_place(e.package) if installed else None
    row = {**base, "quant": e.quant, "size": size, "downloaded": installed, "path": path}
    return [{**row, "fits": True if installed else None}]


def _packaged_place(package: str) -> str | None:
    try:
        return str(packaged_model_place(package, locations.cache_dir()))
    except ModelNotFoundError:  # installed, but not a model package airochat can read
        return None


def _cached_rows(repo: str, base: dict[str, Any], ctx: int, budget: int) -> list[dict[str, Any]]:
    rows = []
    for opt in group_by_quant({str(p): 0 for p in hub.cached_repo_files(repo)}).values():
        paths = [Path(p) for p in opt.files]
        size = _size_on_disk(paths)
        rows.append(
            {
                **base,
                "quant": opt.quant,
                "size": size,
                "downloaded": True,
                "fits": _fits(size, repo, ctx, budget),
                "path": str(paths[0]),
            }
        )
    return rows


def _estimated_row(e: CatalogEntry, base: dict[str, Any], budget: int) -> dict[str, Any]:
    assert e.repo is not None
    params = params_from_name(e.repo)
    est = int(params * 1e9 * BITS.get(e.quant.upper(), 5) / 8) if params else None
    return {
        **base,
        "quant": e.quant,
        "size": est,
        "size_estimated": True,
        "downloaded": False,
        "fits": _fits(est, e.repo, e.ctx, budget),
        "path": None,
    }


def list_models() -> list[dict[str, Any]]:
    """The catalog's models (downloaded quants, else the default one with an estimated size),
    then any other model in the HF cache."""
    budget = memory_budget(gpu=False)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in load_catalog().entries():
        base = _catalog_row(e)
        if e.package:
            rows += _packaged_rows(e, base)
            continue
        if e.engine:
            rows.append(_server_row(e, base))
            continue
        assert e.repo is not None
        seen.add(e.repo.lower())
        cached = _cached_rows(e.repo, base, e.ctx, budget)
        rows += cached or [_estimated_row(e, base, budget)]
    root = hub.hub_cache()
    for repo_dir in sorted(root.glob("models--*--*")) if root.is_dir() else []:
        repo = repo_dir.name[len("models--") :].replace("--", "/", 1)
        if repo.lower() not in seen:
            base = {"alias": None, "repo": repo, "template": "", "ctx": 0, "format": "gguf"}
            base["rope"] = None
            rows += _cached_rows(repo, {**base, "verified_repo": True}, 4096, budget)
    return rows
