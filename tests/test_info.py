"""`airochat info`, GPU planning with a simulated VRAM figure, context limits, RoPE, rejections."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from tests.conftest import run_cli
from tests.tiny_model import vocab


def test_info_json_demo(demo_gguf: Path) -> None:
    proc = run_cli("info", "gemma3-270m", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert (d["architecture"], d["quant"], d["layers"], d["trained_context"]) == (
        "gemma3",
        "Q4_K_M",
        18,
        32768,
    )
    assert d["context"] == 8192 and "catalog" in d["context_reason"]
    assert d["template"] == "airoboros"
    assert d["special_tokens"]["bos"] == {"id": 2, "text": "<bos>"}
    assert 260e6 < d["parameters"] < 280e6
    assert d["memory"]["chosen"]["gpu_layers"] == 0


def test_info_table(tiny_gguf: Path) -> None:
    proc = run_cli("info", str(tiny_gguf))
    assert proc.returncode == 0 and "tiny-llama-test" in proc.stdout and "KV cache" in proc.stdout


def test_auto_offload_with_simulated_vram(tiny_gguf: Path) -> None:
    """The only simulated part: free VRAM. A tiny model fits whole in 1 GiB."""
    proc = run_cli("info", str(tiny_gguf), "--json", env={"AIROCHAT_FAKE_FREE_VRAM_MIB": "1024"})
    chosen = json.loads(proc.stdout)["memory"]["chosen"]
    assert chosen["gpu_layers"] == 3  # 2 blocks + output head
    assert "fit 1.0 GiB free VRAM" in chosen["reason"]
    proc = run_cli("info", str(tiny_gguf), "--json", env={"AIROCHAT_FAKE_FREE_VRAM_MIB": "100"})
    assert json.loads(proc.stdout)["memory"]["chosen"]["gpu_layers"] == 0  # margin eats it


def test_context_too_big_names_what_fits(tiny_gguf: Path) -> None:
    proc = run_cli("ask", str(tiny_gguf), "hi", "--ctx", "2000000000")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "at most --ctx" in proc.stderr and "GiB of KV cache" in proc.stderr


def test_rope_scale_reaches_llama_cpp(tiny_gguf: Path) -> None:
    proc = run_cli(
        "ask",
        str(tiny_gguf),
        "hi",
        "--max-tokens",
        "1",
        "--rope-scale",
        "4",
        "--verbose",
        "--threads",
        "1",
    )
    assert proc.returncode == 0
    assert re.search(r"freq_scale\s+=\s+0\.25", proc.stderr)  # llama.cpp's own report


def test_gpu_layers_on_cpu_build_says_so(tiny_gguf: Path) -> None:
    proc = run_cli("ask", str(tiny_gguf), "hi", "--max-tokens", "1", "--gpu-layers", "all")
    assert proc.returncode == 0
    assert "CPU only" in proc.stderr


def test_bad_gpu_layers_is_usage_error(tiny_gguf: Path) -> None:
    proc = run_cli("ask", str(tiny_gguf), "hi", "--gpu-layers", "lots")
    assert proc.returncode == 2 and "--gpu-layers" not in proc.stdout
    assert "gpu_layers takes a number, auto or all" in proc.stderr


def test_llama_cpp_rejection_reports_its_reason(tmp_path: Path) -> None:
    """Passes the header check (well-formed GGUF) but lacks a tensor llama.cpp needs."""
    tokens, scores, types = vocab()
    path = tmp_path / "missing-tensor.gguf"
    w = GGUFWriter(str(path), "llama")
    for add, value in [
        (w.add_context_length, 64),
        (w.add_embedding_length, 8),
        (w.add_block_count, 1),
        (w.add_feed_forward_length, 8),
        (w.add_head_count, 2),
    ]:
        add(value)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    proc = run_cli("ask", str(path), "hi")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "could not load missing-tensor.gguf" in line and "Failed to load model" not in line
    assert "tensor" in line.split(":", 2)[-1]  # llama.cpp's own words about what is missing
