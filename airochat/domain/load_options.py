"""What llama.cpp is asked to load, decided once from the settings and the model's plan.

The in-process engine passes it to `llama_cpp.Llama`; a llama-server started here gets the same
values as flags (adapters/server_process.py: `ServerFlags` is built from one of these), so the
two engines load a model the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadOptions:
    path: Path
    n_ctx: int
    n_threads: int
    n_gpu_layers: int = 0
    seed: int = -1
    rope_freq_scale: float = 0.0  # 0: take it from the model
    rope_freq_base: float = 0.0
    use_mmap: bool = True
    use_mlock: bool = False
    verbose: bool = False
    vocab_only: bool = False  # tokenizer only: for --print-prompt
    kv_type: str = "f16"  # f16, q8_0 or q4_0 for both K and V


def rope_freq_scale(rope_scale: float) -> float:
    """llama.cpp's rope_freq_scale for a linear RoPE factor: its inverse (0: the model's own)."""
    return 1.0 / rope_scale if rope_scale else 0.0
