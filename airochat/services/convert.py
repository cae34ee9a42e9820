"""Converting legacy GGML quants: options from the catalog for known models, then the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from airochat.adapters.ggml_convert import ConvertOptions, convert
from airochat.domain.catalog import CatalogEntry
from airochat.errors import UsageError


def options_for(
    entry: CatalogEntry | None,
    ctx: int | None = None,
    rope_scale: float | None = None,
    gqa: int | None = None,
    eps: float | None = None,
) -> ConvertOptions:
    """What GGML never recorded: given options win, then the catalog entry, then defaults
    (2048 context as LLaMA-1, no RoPE scaling, GQA read from the tensor shapes)."""
    base = ConvertOptions()
    return ConvertOptions(
        ctx=ctx or (entry.ctx if entry and entry.ctx else base.ctx),
        rope_scale=rope_scale or (entry.rope_scale if entry else 0.0),
        gqa=gqa or 0,
        eps=eps or base.eps,
        name=entry.alias if entry else "",
        template=entry.template if entry and entry.template else base.template,
    )


def converted_path(src: Path) -> Path:
    return src.with_name(src.name.removesuffix(".bin") + ".gguf")


def convert_file(
    src: Path,
    dst: Path | None,
    options: ConvertOptions,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    if not src.is_file():
        raise UsageError(f"no such file: {src}")
    return convert(src, dst or converted_path(src), options, progress)
