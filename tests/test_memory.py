"""Offload and context arithmetic against known layer sizes (pure functions, no GPU needed)."""

from __future__ import annotations

from airochat.domain.memory import (
    GiB,
    MiB,
    ModelShape,
    compute_buffer_bytes,
    max_context,
    plan_offload,
    shape_from_gguf,
    vram_margin,
)

# A llama-2-7B-like Q4 model: 32 blocks of 120 MiB, 70 MiB output head, 70 MiB embeddings,
# KV: 32 layers x 32 kv-heads x (128 + 128) x 2 bytes = 512 KiB per token.
SHAPE = ModelShape(
    n_layer=32,
    layer_bytes=(120 * MiB,) * 32,
    output_bytes=70 * MiB,
    other_bytes=70 * MiB,
    kv_bytes_per_token=512 * 1024,
    n_embd=4096,
    n_ff=11008,
    n_vocab=32000,
)


def test_shape_from_metadata() -> None:
    meta = {
        "general.architecture": "llama",
        "llama.block_count": 2,
        "llama.embedding_length": 64,
        "llama.attention.head_count": 8,
        "llama.attention.head_count_kv": 2,
        "llama.feed_forward_length": 128,
    }
    tensors = [
        ("token_embd.weight", 100),
        ("blk.0.attn_q.weight", 10),
        ("blk.0.ffn_up.weight", 5),
        ("blk.1.attn_q.weight", 7),
        ("output_norm.weight", 1),
        ("output.weight", 50),
    ]
    s = shape_from_gguf(meta, tensors, n_vocab=1000)
    assert s.layer_bytes == (15, 7) and s.output_bytes == 51 and s.other_bytes == 100
    # GQA: 2 kv heads x head_dim 8 x (K + V) x f16, per layer
    assert s.kv_bytes_per_token == 2 * 2 * 8 * 2 * 2


def test_no_gpu_means_cpu_only() -> None:
    plan = plan_offload(SHAPE, 4096, "auto", None)
    assert plan.n_gpu_layers == 0 and plan.vram_bytes == 0
    assert "CPU only" in plan.reason
    assert (
        plan.ram_bytes
        == SHAPE.weight_bytes + 4096 * SHAPE.kv_bytes_per_token + compute_buffer_bytes(SHAPE)
    )


def test_auto_fits_layers_with_their_kv_cache() -> None:
    ctx, free = 4096, 4 * GiB
    plan = plan_offload(SHAPE, ctx, "auto", free)
    per_layer = 120 * MiB + ctx * 16 * 1024  # weights + this layer's KV (64 MiB at 4096)
    budget = free - vram_margin(free) - compute_buffer_bytes(SHAPE)
    assert plan.n_gpu_layers == budget // per_layer
    assert plan.vram_bytes <= free - vram_margin(free)
    assert plan.ram_bytes < SHAPE.weight_bytes  # the rest stays in RAM


def test_auto_with_room_for_everything_includes_the_output_head() -> None:
    plan = plan_offload(SHAPE, 2048, "auto", 80 * GiB)
    assert plan.n_gpu_layers == 33
    assert plan.vram_bytes >= SHAPE.weight_bytes - SHAPE.other_bytes


def test_longer_context_means_fewer_layers() -> None:
    short = plan_offload(SHAPE, 2048, "auto", 6 * GiB).n_gpu_layers
    long = plan_offload(SHAPE, 16384, "auto", 6 * GiB).n_gpu_layers
    assert long < short


def test_explicit_counts() -> None:
    assert plan_offload(SHAPE, 4096, "all", 1 * GiB).n_gpu_layers == 33
    assert plan_offload(SHAPE, 4096, "10", 1 * GiB).n_gpu_layers == 10
    assert plan_offload(SHAPE, 4096, "999", 1 * GiB).n_gpu_layers == 33


def test_max_context_in_ram() -> None:
    avail = 8 * GiB
    fit = max_context(SHAPE, avail)
    spare = avail - SHAPE.weight_bytes - compute_buffer_bytes(SHAPE) - 256 * MiB
    assert fit == spare // SHAPE.kv_bytes_per_token
    # offloaded layers keep their KV on the GPU: more context fits in RAM
    assert max_context(SHAPE, avail, n_gpu=16) > fit
