"""A tiny Gemma 3 GGUF (random weights, the tiny model's vocabulary) with a sliding-window
attention of a few tokens: a reply longer than the window makes llama.cpp mask positions out
of the window, as Gemma 3's 512-token window does on a long chat. Six layers: llama.cpp makes
every sixth Gemma 3 layer global, and a KV shift on a cache with no global layer aborts the
process (an empty K cache has no buffer), which real Gemma 3 models never meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from tests.tiny_model import add_vocab, vocab, write_out


def write_swa_model(path: Path, window: int = 16, n_layer: int = 6, seed: int = 0) -> Path:
    tokens, scores, types = vocab()
    n_vocab, n_embd, n_ff, n_head, head_dim = len(tokens), 32, 64, 4, 8
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    writer = GGUFWriter(str(path), "gemma3")
    writer.add_name("tiny-gemma3-swa-test")
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_sliding_window(window)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(0)
    add_vocab(writer, tokens, scores, types)
    ones = np.ones(n_embd, dtype=np.float32)
    writer.add_tensor("token_embd.weight", w(n_vocab, n_embd))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.attn_q.weight", w(n_head * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", w(n_head * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", w(n_head * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", w(n_embd, n_head * head_dim))
        writer.add_tensor(f"blk.{i}.attn_q_norm.weight", np.ones(head_dim, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_k_norm.weight", np.ones(head_dim, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.post_attention_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w(n_embd, n_ff))
        writer.add_tensor(f"blk.{i}.post_ffw_norm.weight", ones)
    writer.add_tensor("output_norm.weight", ones)
    return write_out(writer, path)
