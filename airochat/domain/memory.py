"""Memory arithmetic: how big a model's layers and KV cache are, how many layers fit in VRAM,
and how long a context fits in RAM. Pure functions over numbers read from the GGUF header."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30
KV_BYTES = 2.0  # llama.cpp's default KV cache type is f16 (per element)
N_UBATCH = 512  # llama.cpp's default micro-batch: sizes the compute buffer
_LAYER = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    n_layer: int
    layer_bytes: tuple[int, ...]  # weights of each repeating block
    output_bytes: int  # output head (+ final norm): offloaded last, as llama.cpp does
    other_bytes: int  # token embeddings and the rest: stay on the CPU
    kv_bytes_per_token: int  # K and V for all layers
    n_embd: int
    n_ff: int
    n_vocab: int

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_bytes) + self.output_bytes + self.other_bytes

    @property
    def kv_bytes_per_token_layer(self) -> int:
        return self.kv_bytes_per_token // max(self.n_layer, 1)


def _int(meta: dict[str, object], key: str, default: int = 0) -> int:
    value = meta.get(key, default)
    if isinstance(value, list):  # per-layer arrays (some archs): take the largest
        value = max((v for v in value if isinstance(v, int)), default=default)
    return int(value) if isinstance(value, int | float) else default


def shape_from_gguf(
    meta: dict[str, object],
    tensors: Iterable[tuple[str, int]],
    n_vocab: int,
    kv_bytes: float = KV_BYTES,
) -> ModelShape:
    """The model's sizes; `kv_bytes` per cached element (f16 2, q8_0 1.06, q4_0 0.56)."""
    arch = str(meta.get("general.architecture", ""))
    n_layer = _int(meta, f"{arch}.block_count")
    n_embd = _int(meta, f"{arch}.embedding_length")
    n_head = max(_int(meta, f"{arch}.attention.head_count", 1), 1)
    n_head_kv = _int(meta, f"{arch}.attention.head_count_kv", n_head) or n_head
    k_len = _int(meta, f"{arch}.attention.key_length", n_embd // n_head)
    v_len = _int(meta, f"{arch}.attention.value_length", n_embd // n_head)
    layers = [0] * n_layer
    output = other = 0
    for name, nbytes in tensors:
        m = _LAYER.match(name)
        if m and int(m.group(1)) < n_layer:
            layers[int(m.group(1))] += nbytes
        elif name.startswith(("output.", "output_norm")):
            output += nbytes
        else:
            other += nbytes
    return ModelShape(
        n_layer=n_layer,
        layer_bytes=tuple(layers),
        output_bytes=output,
        other_bytes=other,
        kv_bytes_per_token=int(n_layer * n_head_kv * (k_len + v_len) * kv_bytes),
        n_embd=n_embd,
        n_ff=_int(meta, f"{arch}.feed_forward_length"),
        n_vocab=n_vocab,
    )


def compute_buffer_bytes(shape: ModelShape) -> int:
    """Scratch memory for one micro-batch: logits plus the widest activations (an estimate
    that tracks llama.cpp's reported compute buffers within a small factor)."""
    return N_UBATCH * (shape.n_vocab + 4 * shape.n_embd + 2 * shape.n_ff) * 4


@dataclass(frozen=True)
class Offload:
    n_gpu_layers: int  # as llama.cpp counts: n_layer + 1 means the output head too
    vram_bytes: int
    ram_bytes: int
    reason: str


def _split(shape: ModelShape, ctx: int, n_gpu: int) -> tuple[int, int]:
    """(VRAM, RAM) bytes when the last `n_gpu` layers go to the GPU (llama.cpp offloads from
    the top), each offloaded layer's KV cache beside it, the output head with n_layer + 1."""
    n_blocks = min(n_gpu, shape.n_layer)
    gpu_weights = sum(shape.layer_bytes[shape.n_layer - n_blocks :]) if n_blocks else 0
    if n_gpu > shape.n_layer:
        gpu_weights += shape.output_bytes
    kv_layer = shape.kv_bytes_per_token_layer * ctx
    compute = compute_buffer_bytes(shape)
    vram = gpu_weights + n_blocks * kv_layer + (compute if n_gpu else 0)
    ram = shape.weight_bytes - gpu_weights + (shape.n_layer - n_blocks) * kv_layer + compute
    return vram, ram


def vram_margin(free: int) -> int:
    """Room left for the driver, fragmentation and other programs."""
    return max(512 * MiB, free // 10)


def plan_offload(shape: ModelShape, ctx: int, request: str, free_vram: int | None) -> Offload:
    """`request` is auto, all, or a number. `free_vram` None means no usable GPU."""
    full = shape.n_layer + 1
    if free_vram is None:
        vram, ram = _split(shape, ctx, 0)
        why = "no GPU offload available (no GPU, or a CPU-only llama.cpp build): CPU only"
        return Offload(0, vram, ram, why)
    if request == "all":
        n, why = full, "all layers requested"
    elif request == "auto":
        budget = free_vram - vram_margin(free_vram)
        n = 0
        while n < full and _split(shape, ctx, n + 1)[0] <= budget:
            n += 1
        why = f"{n} of {full} layers fit {free_vram / GiB:.1f} GiB free VRAM (with margin)"
    else:
        n, why = min(int(request), full), "layers requested"
    vram, ram = _split(shape, ctx, n)
    return Offload(n, vram, ram, why)


def max_context(shape: ModelShape, available: int, n_gpu: int = 0) -> int:
    """The longest context whose CPU-side KV cache fits beside the CPU-side weights."""
    cpu_layers = shape.n_layer - min(n_gpu, shape.n_layer)
    _, ram_without_kv = _split(shape, 0, n_gpu)
    spare = available - ram_without_kv - 256 * MiB
    per_token = shape.kv_bytes_per_token_layer * cpu_layers
    if per_token == 0:
        return 1 << 30
    return max(spare // per_token, 0)
