"""A real llama-architecture GGUF whose greedy reply is a text chosen by the test.

The vocabulary is the tiny model's (so prompts tokenize as usual) plus one token per piece of
the script. The weights make the model a lookup table: the embedding is one-hot, attention and
feed-forward add nothing (zero weights), and the output head maps each token to the next piece
of the script. After any prompt ending in "ASSISTANT: " (last token "▁"), greedy decoding by
real llama.cpp emits the script piece by piece, then EOS -- or starts over (`loop=True`), so a
reply can be as long as --max-tokens asks. Used where a test must know what the reply says: the
screen at 80 columns against the reply, keys typed while a reply streams.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from gguf import TokenType

from tests.tiny_model import Shape, llama_writer, vocab, write_out


def write_script_model(path: Path, pieces: list[str], loop: bool = False) -> Path:
    tokens, scores, types = vocab()
    start = tokens.index("▁")  # the last token of "... ASSISTANT: "
    first = len(tokens)
    for piece in pieces:
        tokens.append(piece.replace(" ", "▁"))
        scores.append(-1000.0)  # never chosen when tokenizing user text
        types.append(int(TokenType.NORMAL))
    n_vocab = len(tokens)
    n_embd = (n_vocab + 31) // 32 * 32
    n_head, n_ff = 4, 32
    embd = np.zeros((n_vocab, n_embd), dtype=np.float32)
    embd[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
    out = np.zeros((n_vocab, n_embd), dtype=np.float32)  # logits[next] from input token
    chain = [start, *range(first, n_vocab)]
    for a, b in itertools.pairwise(chain):
        out[b, a] = 50.0
    out[first if loop else 2, chain[-1]] = 50.0  # then EOS (id 2), or the script again
    for t in range(n_vocab):
        if t not in chain:
            out[2, t] = 50.0  # any other token: end the reply
    shape = Shape(n_embd, n_ff, n_head, n_layer=1)
    writer = llama_writer(path, "script-model-test", (tokens, scores, types), shape, ctx=4096)
    writer.add_tensor("token_embd.weight", embd)
    zero = np.zeros((n_embd, n_embd), dtype=np.float32)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", zero)
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", np.zeros((n_ff, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((n_ff, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((n_embd, n_ff), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", out)
    return write_out(writer, path)
