"""The tiny test model written twice from the same weights: as legacy GGJT v3 (the format the
airoboros 1.4 quants were published in) and directly as GGUF, for converter tests."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType
from gguf.quants import quantize

from tests.tiny_model import vocab

N_EMBD, N_FF, N_LAYER, N_HEAD = 32, 64, 2, 4
Q8 = GGMLQuantizationType.Q8_0
F32 = GGMLQuantizationType.F32
LEGACY = {
    "attn_q": "attention.wq",
    "attn_k": "attention.wk",
    "attn_v": "attention.wv",
    "attn_output": "attention.wo",
    "attn_norm": "attention_norm",
    "ffn_norm": "ffn_norm",
    "ffn_gate": "feed_forward.w1",
    "ffn_down": "feed_forward.w2",
    "ffn_up": "feed_forward.w3",
}


def weights(
    n_head_kv: int = N_HEAD, seed: int = 1
) -> list[tuple[str, np.ndarray, GGMLQuantizationType]]:
    """(gguf name, numpy array (rows, cols), type). 2-D layer weights are Q8_0."""
    rng = np.random.default_rng(seed)
    n_vocab = len(vocab()[0])
    kv = N_EMBD * n_head_kv // N_HEAD

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    out = [("token_embd.weight", w(n_vocab, N_EMBD), F32)]
    for i in range(N_LAYER):
        out.append((f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, np.float32), F32))
        out.append((f"blk.{i}.attn_q.weight", w(N_EMBD, N_EMBD), Q8))
        out.append((f"blk.{i}.attn_k.weight", w(kv, N_EMBD), Q8))
        out.append((f"blk.{i}.attn_v.weight", w(kv, N_EMBD), Q8))
        out.append((f"blk.{i}.attn_output.weight", w(N_EMBD, N_EMBD), Q8))
        out.append((f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, np.float32), F32))
        out.append((f"blk.{i}.ffn_gate.weight", w(N_FF, N_EMBD), Q8))
        out.append((f"blk.{i}.ffn_down.weight", w(N_EMBD, N_FF), Q8))
        out.append((f"blk.{i}.ffn_up.weight", w(N_FF, N_EMBD), Q8))
    out.append(("output_norm.weight", np.ones(N_EMBD, np.float32), F32))
    out.append(("output.weight", w(n_vocab, N_EMBD), F32))
    return out


def _bytes(arr: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    return quantize(arr, qtype) if qtype == Q8 else arr


def write_direct_gguf(path: Path, n_head_kv: int = N_HEAD, ctx: int = 512) -> Path:
    tokens, scores, types = vocab()
    w = GGUFWriter(str(path), "llama")
    w.add_context_length(ctx)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for name, arr, qtype in weights(n_head_kv):
        data = _bytes(arr, qtype)
        if qtype == Q8:
            w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def ggml_vocab() -> list[tuple[bytes, float]]:
    """The vocabulary as GGML stored it: spaces for U+2581, raw bytes for byte tokens."""
    tokens, scores, types = vocab()
    out = []
    for text, score, kind in zip(tokens, scores, types, strict=True):
        if kind == TokenType.BYTE:
            raw = bytes([int(text[3:-1], 16)])
        else:
            raw = text.replace("\u2581", " ").encode()
        out.append((raw, score))
    return out


def write_ggjt_v3(path: Path, n_head_kv: int = N_HEAD, version: int = 3) -> Path:
    voc = ggml_vocab()
    out = bytearray(b"tjgg" + struct.pack("<I", version))
    out += struct.pack("<7i", len(voc), N_EMBD, 256, N_HEAD, N_LAYER, N_EMBD // N_HEAD, 7)
    for text, score in voc:
        out += struct.pack("<I", len(text)) + text + struct.pack("<f", score)
    for name, arr, qtype in weights(n_head_kv):
        legacy = _legacy_name(name).encode()
        dims = list(reversed(arr.shape))  # ggml order: row length first
        out += struct.pack("<3i", len(dims), len(legacy), int(qtype))
        out += struct.pack(f"<{len(dims)}i", *dims) + legacy
        out += b"\0" * (-len(out) % 32)
        out += _bytes(arr, qtype).tobytes()
    path.write_bytes(bytes(out))
    return path


def _legacy_name(name: str) -> str:
    if name.startswith("blk."):
        _, i, kind, _ = name.split(".")
        return f"layers.{i}.{LEGACY[kind]}.weight"
    return {
        "token_embd.weight": "tok_embeddings.weight",
        "output_norm.weight": "norm.weight",
        "output.weight": "output.weight",
    }[name]
