"""The GGJT v3 -> GGUF converter, checked by logits against the same model written as GGUF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airochat.adapters.ggml_convert import ConvertOptions, GGMLError, convert
from airochat.adapters.gguf_file import read_header
from tests.conftest import run_cli
from tests.legacy_model import write_direct_gguf, write_ggjt_v3


def logits(path: Path, ids: list[int]) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=128, n_threads=1, logits_all=True, verbose=False)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


@pytest.mark.parametrize("n_head_kv", [4, 2], ids=["mha", "gqa"])
def test_converted_model_gives_the_same_logits(tmp_path: Path, n_head_kv: int) -> None:
    direct = write_direct_gguf(tmp_path / "direct.gguf", n_head_kv)
    legacy = write_ggjt_v3(tmp_path / "legacy.ggmlv3.q8_0.bin", n_head_kv)
    out = convert(legacy, tmp_path / "converted.gguf", ConvertOptions(ctx=512, eps=1e-5))
    from llama_cpp import Llama

    tok = Llama(str(direct), vocab_only=True, verbose=False)
    ids = tok.tokenize(b"hello world what is the capital", add_bos=True)
    assert list(tok.tokenize(b"hello world", add_bos=True)) == list(
        Llama(str(out), vocab_only=True, verbose=False).tokenize(b"hello world", add_bos=True)
    )
    a, b = logits(direct, ids), logits(out, ids)
    assert a.shape == b.shape and np.array_equal(a, b)
    h = read_header(out)
    assert h.metadata["llama.attention.head_count_kv"] == n_head_kv  # inferred from shapes
    assert h.metadata["airochat.template"] == "airoboros"


def test_rope_and_context_metadata(tmp_path: Path) -> None:
    legacy = write_ggjt_v3(tmp_path / "pi.bin")
    out = convert(legacy, tmp_path / "pi.gguf", ConvertOptions(ctx=8192, rope_scale=4.0))
    meta = read_header(out).metadata
    assert meta["llama.context_length"] == 8192
    assert meta["llama.rope.scaling.type"] == "linear"
    assert meta["llama.rope.scaling.factor"] == 4.0


def test_refuses_to_overwrite_and_wrong_gqa(tmp_path: Path) -> None:
    legacy = write_ggjt_v3(tmp_path / "m.bin", n_head_kv=2)
    (tmp_path / "exists.gguf").write_bytes(b"keep me")
    with pytest.raises(Exception, match="refusing to overwrite"):
        convert(legacy, tmp_path / "exists.gguf", ConvertOptions())
    assert (tmp_path / "exists.gguf").read_bytes() == b"keep me"
    with pytest.raises(Exception, match="--gqa 4 does not match the tensors \\(they say 2\\)"):
        convert(legacy, tmp_path / "x.gguf", ConvertOptions(gqa=4))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(write_ggjt_v3(p).read_bytes()[:-500]), "truncated in tensor"),
        (lambda p: p.write_bytes(b"GGUF" + b"\0" * 64), "not a legacy GGML file"),
        (lambda p: write_ggjt_v3(p, version=1), "ggjt v1 is older than GGJT v3"),
        (lambda p: p.write_bytes(b"lmgg" + b"\0" * 64), "ggml v0 is older than GGJT v3"),
    ],
    ids=["truncated", "magic", "version", "unversioned"],
)
def test_bad_legacy_files(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "bad.bin"
    make(path)  # type: ignore[operator]
    with pytest.raises(GGMLError, match=message):
        convert(path, tmp_path / "out.gguf", ConvertOptions())
    assert not (tmp_path / "out.gguf").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.bin"]  # no temp left behind


def test_convert_command_and_run(tmp_path: Path) -> None:
    legacy = write_ggjt_v3(tmp_path / "airoboros-13b-gpt4-1.4.ggmlv3.q8_0.bin")
    proc = run_cli("convert", str(legacy), "--model", "airoboros-65b-1.4.1-pi", "--eps", "1e-5")
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.strip())
    assert out == tmp_path / "airoboros-13b-gpt4-1.4.ggmlv3.q8_0.gguf"
    assert "context 8192, RoPE linear x4" in proc.stderr  # from the catalog entry
    again = run_cli("convert", str(legacy))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    info = run_cli("info", str(out), "--json")
    assert '"template": "airoboros"' in info.stdout and "recorded in the file" in info.stdout
    proc = run_cli("ask", str(out), "hello", "--max-tokens", "3", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("ask", str(legacy), "hello")  # the legacy file itself is refused clearly
    assert proc.returncode == 1 and "legacy GGML (ggjt)" in proc.stderr and "convert" in proc.stderr


def test_pull_ggml_repo_downloads_verifies_and_converts(tmp_path: Path) -> None:
    from tests.hub_server import HubServer, Repo

    legacy = write_ggjt_v3(tmp_path / "src.bin").read_bytes()
    server = HubServer().start()
    try:
        server.state.repos["TheBloke/airoboros-13B-gpt4-1.4-GGML"] = Repo(
            files={
                "airoboros-13b-gpt4-1.4.ggmlv3.q4_K_M.bin": legacy,
                "airoboros-13b-gpt4-1.4.ggmlv3.q8_0.bin": legacy + b"",
            }
        )
        env = {
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
        }
        proc = run_cli("pull", "airoboros-13b-1.4", env=env)  # the best quant that fits
        assert proc.returncode == 0, proc.stderr
        out = Path(proc.stdout.strip())
        assert out.name == "airoboros-13b-gpt4-1.4.ggmlv3.q8_0.gguf" and out.is_file()
        assert "converted from GGML" in proc.stderr
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        proc = run_cli(
            "ask",
            "airoboros-13b-1.4",
            "hello",
            "--max-tokens",
            "2",
            "--threads",
            "1",
            "--print-prompt",
            "--json",
            env=offline,
        )
        assert proc.returncode == 0 and '"template": "airoboros"' in proc.stdout
        proc = run_cli("rm", "airoboros-13b-1.4", env=env)
        assert proc.returncode == 0 and not out.exists()
    finally:
        server.stop()
