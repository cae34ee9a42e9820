"""Write a tiny llama-architecture GGUF (random weights, SentencePiece-style vocab) for tests.

Small enough to load in milliseconds, real enough that llama.cpp tokenizes, decodes and caches
it like any other llama model.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType

WORDS = [
    "USER",
    "ASSISTANT",
    "A",
    "chat",
    "between",
    "a",
    "curious",
    "user",
    "and",
    "an",
    "assistant",
    "hello",
    "world",
    "The",
    "is",
    "of",
    "to",
    "in",
    "what",
    "capital",
]


CONTROL = ["<|im_start|>", "<|im_end|>"]
N_FIXED = 3 + 256 + len(CONTROL)


def vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    tokens += CONTROL
    types += [TokenType.CONTROL] * len(CONTROL)
    pieces = ["▁", *list(string.ascii_letters + string.digits + string.punctuation)]
    pieces += [f"▁{c}" for c in string.ascii_letters] + [f"▁{w}" for w in WORDS] + WORDS
    for piece in dict.fromkeys(pieces):
        tokens.append(piece)
        types.append(TokenType.NORMAL)
    # Longer pieces score higher so SentencePiece merges prefer whole words.
    scores = [0.0] * N_FIXED + [float(len(t)) for t in tokens[N_FIXED:]]
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path,
    ctx: int = 512,
    seed: int = 0,
    chat_template: str | None = None,
    n_layer: int = 2,
    bos_id: int = 1,
    name: str = "tiny-llama-test",
    duplicate_token: int | None = None,
) -> Path:
    """`n_layer` and `bos_id` can be set to what a damaged download might hold, and
    `duplicate_token` gives the last token that token's text; `name` is general.name."""
    tokens, scores, types = vocab()
    if duplicate_token is not None:
        tokens[-1] = tokens[duplicate_token]
    n_vocab, n_embd, n_ff, n_head = len(tokens), 32, 64, 4
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    shape = Shape(n_embd, n_ff, n_head, n_layer)
    writer = llama_writer(path, name, (tokens, scores, types), shape, ctx, bos_id)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", w(n_vocab, n_embd))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", w(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", w(n_vocab, n_embd))
    return write_out(writer, path)


@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_ff: int
    n_head: int
    n_layer: int


def llama_writer(
    path: Path,
    name: str,
    vocabulary: tuple[list[str], list[float], list[int]],
    shape: Shape,
    ctx: int,
    bos_id: int = 1,
) -> GGUFWriter:
    """A GGUF writer holding a llama model's metadata and SentencePiece vocabulary; the
    caller adds the tensors."""
    tokens, scores, types = vocabulary
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head)
    writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    add_vocab(writer, tokens, scores, types, bos_id)
    return writer


def add_vocab(
    writer: GGUFWriter, tokens: list[str], scores: list[float], types: list[int], bos_id: int = 1
) -> None:
    """The tiny SentencePiece-style vocabulary's keys (unk 0, eos 2, BOS added)."""
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(bos_id)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)


def write_out(writer: GGUFWriter, path: Path) -> Path:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
