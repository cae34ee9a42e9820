"""`airochat models`: the catalog and the downloaded models, with sizes and whether they fit."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from airochat.adapters import hub
from airochat.domain.memory import GiB
from airochat.domain.quants import BITS, group_by_quant, kv_bytes_guess, params_from_name
from airochat.services.models import load_catalog
from airochat.services.pull import memory_budget


def _fits(size: int | None, name: str, ctx: int, budget: int) -> bool | None:
    if not size:
        return None
    params = params_from_name(name) or 7.0
    return size + kv_bytes_guess(params, ctx or 4096) + GiB <= budget


def _size_on_disk(paths: list[Path]) -> int:
    return sum(p.resolve().stat().st_size for p in paths if p.exists())


def inventory() -> list[dict[str, Any]]:
    budget = memory_budget(gpu=False)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in load_catalog().entries():
        base = {
            "alias": e.alias,
            "repo": e.source,
            "template": e.template,
            "ctx": e.ctx,
            "format": e.format,
            "verified_repo": e.verified,
        }
        if e.package:
            installed = importlib.util.find_spec(e.package.replace("-", "_")) is not None
            rows.append(
                {
                    **base,
                    "quant": e.quant,
                    "size": None,
                    "downloaded": installed,
                    "fits": True if installed else None,
                    "path": None,
                }
            )
            continue
        assert e.repo is not None
        seen.add(e.repo.lower())
        cached = group_by_quant({str(p): 0 for p in hub.cached_repo_files(e.repo)})
        for opt in cached.values():
            paths = [Path(p) for p in opt.files]
            size = _size_on_disk(paths)
            rows.append(
                {
                    **base,
                    "quant": opt.quant,
                    "size": size,
                    "downloaded": True,
                    "fits": _fits(size, e.repo, e.ctx, budget),
                    "path": str(paths[0]),
                }
            )
        if not cached:
            params = params_from_name(e.repo)
            est = int(params * 1e9 * BITS.get(e.quant.upper(), 5) / 8) if params else None
            rows.append(
                {
                    **base,
                    "quant": e.quant,
                    "size": est,
                    "size_estimated": True,
                    "downloaded": False,
                    "fits": _fits(est, e.repo, e.ctx, budget),
                    "path": None,
                }
            )
    root = hub.hub_cache()
    for repo_dir in sorted(root.glob("models--*--*")) if root.is_dir() else []:
        repo = repo_dir.name[len("models--") :].replace("--", "/", 1)
        if repo.lower() in seen:
            continue
        for opt in group_by_quant({str(p): 0 for p in hub.cached_repo_files(repo)}).values():
            paths = [Path(p) for p in opt.files]
            size = _size_on_disk(paths)
            rows.append(
                {
                    "alias": None,
                    "repo": repo,
                    "quant": opt.quant,
                    "size": size,
                    "downloaded": True,
                    "fits": _fits(size, repo, 4096, budget),
                    "path": str(paths[0]),
                    "template": "",
                    "ctx": 0,
                    "format": "gguf",
                    "verified_repo": True,
                }
            )
    return rows
