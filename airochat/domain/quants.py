"""Quantization: llama.cpp's file types, quant names in file names, and picking the best quant
that fits this machine."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airochat.domain.splits import Scheme, complete, model_name, ordered, part_of

FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


def quant_name(file_type: object) -> str:
    if isinstance(file_type, int):
        return FILE_TYPES.get(file_type, f"type {file_type}")
    return "unknown"


# Best first. At similar quality K-quants come before the legacy formats (Q5_K_M before Q5_1).
QUALITY = [
    "F32",
    "BF16",
    "F16",
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_K",
    "Q5_1",
    "Q5_0",
    "Q4_K_M",
    "Q4_K_S",
    "Q4_K",
    "IQ4_XS",
    "IQ4_NL",
    "Q4_1",
    "Q4_0",
    "Q3_K_L",
    "Q3_K_M",
    "IQ3_M",
    "IQ3_S",
    "Q3_K_S",
    "Q3_K",
    "IQ3_XS",
    "IQ3_XXS",
    "Q2_K",
    "Q2_K_S",
    "IQ2_M",
    "IQ2_S",
    "IQ2_XS",
    "IQ2_XXS",
    "IQ1_M",
    "IQ1_S",
]
# Approximate bits per weight, to estimate sizes of files not yet listed.
BITS = {
    "F32": 32,
    "BF16": 16,
    "F16": 16,
    "Q8_0": 8.5,
    "Q6_K": 6.6,
    "Q5_K_M": 5.7,
    "Q5_K_S": 5.5,
    "Q5_1": 6.0,
    "Q5_0": 5.5,
    "Q4_K_M": 4.9,
    "Q4_K_S": 4.6,
    "IQ4_XS": 4.3,
    "Q4_1": 5.0,
    "Q4_0": 4.5,
    "Q3_K_L": 4.3,
    "Q3_K_M": 3.9,
    "Q3_K_S": 3.5,
    "Q2_K": 3.4,
}
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[0-9A-Z]+)*|BF16|F16|F32)(?![A-Za-z0-9])", re.IGNORECASE
)
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_PARAMS = re.compile(r"(?<![0-9.])(\d{1,3}(?:\.\d)?)[bB](?![A-Za-z0-9])")


def quant_of(filename: str) -> str | None:
    """The quant named in a file name (`model.Q4_K_M.gguf`, `...ggmlv3.q4_K_M.bin`)."""
    stem = SHARD.sub("", filename.rsplit("/", 1)[-1])
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else None


def rank(quant: str) -> int:
    return QUALITY.index(quant) if quant in QUALITY else len(QUALITY)


def params_from_name(name: str) -> float | None:
    """Billions of parameters from a name such as `airoboros-l2-13B-gpt4-2.0` (13.0)."""
    found = _PARAMS.findall(name)
    return float(found[0]) if found else None


def kv_bytes_guess(params_b: float, ctx: int) -> int:
    """KV cache for a llama-family model of this size at `ctx` tokens, f16, before the file
    (and its exact shape) is here: n_layer x n_embd x K+V x 2 bytes per token; 70B uses GQA."""
    shapes = [(8, 32, 4096, 1), (14, 40, 5120, 1), (40, 60, 6656, 1), (70, 80, 8192, 8)]
    layers, embd, gqa = next(((n, e, g) for b, n, e, g in shapes if params_b <= b), (80, 8192, 8))
    return ctx * layers * embd * 2 * 2 // gqa


@dataclass(frozen=True)
class QuantOption:
    quant: str
    files: tuple[str, ...]  # all shards or parts, in order
    size: int  # all of them: the size of the model once joined
    joined: str | None = None  # for a split quant: the file its parts make
    scheme: Scheme | None = None

    def label(self) -> str:
        return f"{self.quant} ({len(self.files)} parts)" if self.joined else self.quant


def _option(quant: str, items: list[tuple[str, int]]) -> QuantOption | None:
    """One quant's files as an option: whole files (llama.cpp shards together), else the parts
    of one split; None when a split is missing a part."""
    whole = [(p, s) for p, s in items if part_of(p) is None]
    if whole:
        return QuantOption(quant, tuple(sorted(p for p, _ in whole)), sum(s for _, s in whole))
    first = part_of(items[0][0])
    assert first is not None
    parts = [(p, s) for p, s in items if (pp := part_of(p)) and pp.whole == first.whole]
    paths = ordered([p for p, _ in parts])
    if not complete(paths):
        return None
    return QuantOption(quant, tuple(paths), sum(s for _, s in parts), first.whole, first.scheme)


def group_by_quant(files: dict[str, int]) -> dict[str, QuantOption]:
    """{path: size} of a repo's model files -> one option per quant (shards and the parts of
    a split together)."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for path, size in files.items():
        q = quant_of(model_name(path))
        if q:
            groups.setdefault(q, []).append((path, size))
    options = {q: _option(q, items) for q, items in groups.items()}
    return {q: o for q, o in options.items() if o is not None}


def pick(options: dict[str, QuantOption], budget: int) -> tuple[QuantOption | None, str]:
    """The best-quality quant whose file fits `budget` bytes, and why."""
    ordered = sorted(options.values(), key=lambda o: (rank(o.quant), o.size))
    for opt in ordered:
        if opt.size <= budget:
            better = [o.quant for o in ordered if rank(o.quant) < rank(opt.quant)]
            why = f"{opt.quant} is the best quality that fits {budget / 2**30:.1f} GiB"
            return opt, why + (f" ({', '.join(better[:3])} would not)" if better else "")
    smallest = min(ordered, key=lambda o: o.size, default=None)
    return None, (
        f"no quant fits {budget / 2**30:.1f} GiB; the smallest, {smallest.quant}, is "
        f"{smallest.size / 2**30:.1f} GiB"
        if smallest
        else "no quants found"
    )
