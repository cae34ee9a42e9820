"""Legacy GGML (GGJT v3) llama models to GGUF, with the `gguf` package's writer.

GGJT v3 is the last legacy format: magic `ggjt`, version 3, seven int32 hyper-parameters, the
vocabulary (text, score), then tensors (n_dims, name length, type, dims, name, padding to 32
bytes, data). Every quantized tensor is copied as-is; what GGML never recorded (context length,
RoPE scaling, grouped-query heads, norm epsilon, template) comes from options, the catalog, or
the tensor shapes. Reads are bounded by the file's size; the output is written to a temporary
file and renamed when complete.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airochat.adapters.gguf_file import GGML_TYPES
from airochat.errors import ModelLoadError, UsageError

_LEGACY = {b"lmgg": ("ggml", 0), b"fmgg": ("ggmf", 1), b"tjgg": ("ggjt", 2)}
_LAYER_NAMES = {
    "attention.wq": "attn_q",
    "attention.wk": "attn_k",
    "attention.wv": "attn_v",
    "attention.wo": "attn_output",
    "attention_norm": "attn_norm",
    "ffn_norm": "ffn_norm",
    "feed_forward.w1": "ffn_gate",
    "feed_forward.w2": "ffn_down",
    "feed_forward.w3": "ffn_up",
}
_TOP_NAMES = {"tok_embeddings": "token_embd", "norm": "output_norm", "output": "output"}
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)\.weight$")


class GGMLError(ModelLoadError):
    pass


@dataclass
class LegacyTensor:
    name: str
    dims: tuple[int, ...]  # ggml order: ne0 (row length) first
    type_id: int
    offset: int
    nbytes: int


@dataclass
class GGMLModel:
    n_vocab: int
    n_embd: int
    n_mult: int
    n_head: int
    n_layer: int
    n_rot: int
    ftype: int
    vocab: list[tuple[bytes, float]] = field(default_factory=list)
    tensors: list[LegacyTensor] = field(default_factory=list)


@dataclass(frozen=True)
class ConvertOptions:
    ctx: int = 2048
    rope_scale: float = 0.0  # linear factor (4 for the PI-8192 models)
    gqa: int = 0  # 0: infer from the k/v tensor shapes
    eps: float = 1e-6  # LLaMA-1 used 1e-6, Llama-2 1e-5
    name: str = ""
    template: str = "airoboros"


def _bad(path: Path, why: str) -> GGMLError:
    return GGMLError(f"{path.name}: {why}")


class _Cursor:
    """Bounded reads through a legacy file: every length is checked against what is left."""

    def __init__(self, path: Path, buf: Any, pos: int) -> None:
        self.path, self.buf, self.pos, self.size = path, buf, pos, len(buf)

    def take(self, fmt: str, what: str) -> tuple[Any, ...]:
        n = struct.calcsize(fmt)
        if self.pos + n > self.size:
            raise _bad(self.path, f"truncated while reading {what}; re-download it")
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return out

    def raw(self, n: int, what: str) -> bytes:
        if self.pos + n > self.size:
            raise _bad(self.path, f"truncated {what}; re-download it")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out


def _check_version(path: Path, buf: Any) -> None:
    magic = bytes(buf[:4])
    if magic not in _LEGACY:
        raise _bad(path, f"not a legacy GGML file (magic {magic!r})")
    kind, _ = _LEGACY[magic]
    version = struct.unpack_from("<I", buf, 4)[0] if kind != "ggml" and len(buf) >= 8 else 0
    if kind != "ggjt" or version != 3:
        raise _bad(
            path,
            f"{kind} v{version} is older than GGJT v3, the only legacy format "
            "supported; look for a newer quantization of the model",
        )


def _read_tensor(cur: _Cursor) -> LegacyTensor:
    path = cur.path
    n_dims, name_len, type_id = cur.take("<3i", "a tensor header")
    if not 1 <= n_dims <= 4 or not 0 < name_len < 4096:
        raise _bad(path, f"damaged tensor header at byte {cur.pos}")
    dims = cur.take(f"<{n_dims}i", "tensor dims")
    name = cur.raw(name_len, "tensor name").decode("utf-8", errors="replace")
    cur.pos = (cur.pos + 31) & ~31
    if type_id not in GGML_TYPES:
        raise _bad(path, f"tensor {name} has an unknown type {type_id}")
    _, block, bsize = GGML_TYPES[type_id]
    count = 1
    for d in dims:
        if d <= 0:
            raise _bad(path, f"tensor {name} has an impossible shape {dims}")
        count *= d
    if dims[0] % block:
        raise _bad(path, f"tensor {name} rows do not fill whole blocks")
    nbytes = count // block * bsize
    if cur.pos + nbytes > cur.size:
        raise _bad(path, f"truncated in tensor {name}; re-download it")
    tensor = LegacyTensor(name, tuple(dims), type_id, cur.pos, nbytes)
    cur.pos += nbytes
    return tensor


def read_ggjt(path: Path, buf: Any) -> GGMLModel:
    _check_version(path, buf)
    cur = _Cursor(path, buf, 8)
    model = GGMLModel(*cur.take("<7i", "hyper-parameters"))
    if not (
        0 < model.n_vocab < 1 << 20
        and 0 < model.n_layer < 1024
        and 0 < model.n_head < 1024
        and 0 < model.n_embd < 1 << 17
    ):
        raise _bad(path, "implausible hyper-parameters")
    for i in range(model.n_vocab):
        (length,) = cur.take("<I", f"vocab item {i}")
        if length > 4096:
            raise _bad(path, f"bad vocab item {i}; re-download it")
        text = cur.raw(length, f"vocab item {i}")
        model.vocab.append((text, cur.take("<f", f"vocab score {i}")[0]))
    while cur.pos < cur.size:
        model.tensors.append(_read_tensor(cur))
    return model


def gguf_name(legacy: str) -> str:
    m = _LAYER.match(legacy)
    if m and m.group(2) in _LAYER_NAMES:
        return f"blk.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}.weight"
    stem = legacy.removesuffix(".weight")
    if stem in _TOP_NAMES and legacy.endswith(".weight"):
        return f"{_TOP_NAMES[stem]}.weight"
    raise GGMLError(f"unexpected tensor {legacy!r}: not a llama model?")


def _shapes(model: GGMLModel, opts: ConvertOptions, path: Path) -> tuple[int, int]:
    """(n_ff, n_head_kv) from the layer-0 tensors; --gqa must agree with them."""
    by_name = {t.name: t for t in model.tensors}
    w1 = by_name.get("layers.0.feed_forward.w1.weight")
    wk = by_name.get("layers.0.attention.wk.weight")
    if w1 is None or wk is None or len(w1.dims) < 2 or len(wk.dims) < 2:
        raise _bad(path, "missing layer-0 attention or feed-forward tensors")
    kv_rows = wk.dims[1]
    if model.n_embd % kv_rows:
        raise _bad(path, f"k projection has {kv_rows} rows for width {model.n_embd}")
    gqa = model.n_embd // kv_rows
    if opts.gqa and opts.gqa != gqa:
        raise UsageError(f"--gqa {opts.gqa} does not match the tensors (they say {gqa})")
    return int(w1.dims[1]), model.n_head // gqa


def _vocab(model: GGMLModel) -> tuple[list[bytes], list[float], list[int]]:
    """GGML stored SentencePiece pieces with spaces for U+2581 and raw bytes for the 256 byte
    tokens (ids 3..258); GGUF wants them back, with token types."""
    tokens, scores, types = [], [], []
    for i, (text, score) in enumerate(model.vocab):
        kind = 1  # normal
        if i == 0:
            text, kind = b"<unk>", 2
        elif i in (1, 2):
            text, kind = (b"<s>", b"</s>")[i - 1], 3
        elif not text:
            kind = 3
        elif 3 <= i <= 258 and len(text) == 1:
            text, kind = f"<0x{text[0]:02X}>".encode(), 6
        else:
            text = text.replace(b" ", "\u2581".encode())
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    return tokens, scores, types


def convert(
    src: Path, dst: Path, opts: ConvertOptions, progress: Callable[[int, int], None] | None = None
) -> Path:
    if dst.exists():
        raise UsageError(f"{dst} exists; refusing to overwrite it")
    try:
        fh = src.open("rb")
    except OSError as exc:
        raise GGMLError(f"cannot read {src}: {exc.strerror}") from None
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        with fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            model = read_ggjt(src, buf)
            _write(model, buf, tmp, opts, _shapes(model, opts, src), src, progress)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _write(
    model: GGMLModel,
    buf: Any,
    out: Path,
    opts: ConvertOptions,
    shapes: tuple[int, int],
    src: Path,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Write the GGUF. Tensor data are views into the mapped source, released on return."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, RopeScalingType

    n_ff, n_head_kv = shapes
    w = GGUFWriter(str(out), "llama")
    w.add_name(opts.name or src.stem)
    w.add_description(f"converted by airochat from legacy GGJT v3 ({src.name})")
    w.add_file_type(model.ftype)
    w.add_context_length(opts.ctx)
    w.add_embedding_length(model.n_embd)
    w.add_block_count(model.n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(model.n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(model.n_embd // model.n_head)
    w.add_layer_norm_rms_eps(opts.eps)
    if opts.rope_scale:
        w.add_rope_scaling_type(RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(opts.rope_scale)
    tokens, scores, types = _vocab(model)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_string("airochat.template", opts.template)
    for t in model.tensors:
        # gguf's writer reads a raw tensor's last axis in bytes: outer dims first.
        shape = [*reversed(t.dims[1:]), t.nbytes // _rows(t.dims)]
        qtype = GGMLQuantizationType(t.type_id)
        w.add_tensor_info(gguf_name(t.name), shape, np.dtype(np.uint8), t.nbytes, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = sum(t.nbytes for t in model.tensors)
    done = 0
    for t in model.tensors:
        w.write_tensor_data(np.frombuffer(buf, dtype=np.uint8, count=t.nbytes, offset=t.offset))
        done += t.nbytes
        if progress:
            progress(done, total)
    w.close()


def _rows(dims: tuple[int, ...]) -> int:
    rows = 1
    for d in dims[1:]:
        rows *= d
    return rows
