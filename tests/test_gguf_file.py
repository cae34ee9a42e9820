"""The header check refuses bad files with a one-line reason, fast, before llama.cpp sees them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from airochat.adapters.gguf_file import read_header
from airochat.errors import ModelLoadError


def test_reads_the_tiny_model(tiny_gguf: Path) -> None:
    h = read_header(tiny_gguf)
    assert (h.version, h.arch, h.context_length, h.name) == (3, "llama", 512, "tiny-llama-test")
    assert len(h.tensors) == 2 * 9 + 3
    assert all(t.nbytes > 0 for t in h.tensors)


def test_reads_the_demo_model(demo_gguf: Path) -> None:
    h = read_header(demo_gguf)
    assert (h.arch, h.context_length, h.chat_template) == ("gemma3", 32768, None)


def kv_header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


CASES = {
    "empty": (b"", "the file is empty"),
    "html": (b"<!DOCTYPE html><html>404</html>", "web page"),
    "lfs": (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "Git LFS pointer"),
    "ggjt": (b"tjgg\x03\x00\x00\x00" + b"\x00" * 64, "legacy GGML \\(ggjt\\).*airochat convert"),
    "magic": (b"\x7fELF" + b"\x00" * 60, "not a GGUF file"),
    "version": (kv_header(0, 0, version=9), "unsupported GGUF version 9"),
    "counts": (kv_header(1 << 40, 1), "implausible header"),
    "key_len": (kv_header(0, 1) + struct.pack("<Q", 1 << 60), "truncated"),
    "truncated_kv": (kv_header(0, 2) + string(b"general.name") + struct.pack("<I", 8), "truncated"),
    "array": (
        kv_header(0, 1) + string(b"a") + struct.pack("<IIQ", 9, 8, 1 << 50),
        "truncated",
    ),
    "dims": (
        kv_header(1, 0) + string(b"t") + struct.pack("<I", 9),
        "9 dimensions",
    ),
    "tensor_outside": (
        kv_header(1, 0) + string(b"t") + struct.pack("<IQIQ", 1, 1 << 20, 0, 0),
        "outside the file",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_files_get_one_line_reasons(tmp_path: Path, case: str) -> None:
    data, message = CASES[case]
    path = tmp_path / f"{case}.gguf"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match=message) as info:
        read_header(path)
    assert "\n" not in str(info.value)


def test_truncated_real_model(tiny_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:-1000])
    with pytest.raises(ModelLoadError, match="re-download"):
        read_header(cut)


@pytest.mark.parametrize("size", [40, 262_144])
def test_a_repeated_token_text_is_found_in_any_vocabulary(tmp_path: Path, size: int) -> None:
    """llama.cpp aborts on it; kept lists (up to 64 strings) and skipped ones alike."""
    import numpy as np
    from gguf import GGUFWriter

    for repeat in (False, True):
        path = tmp_path / f"v{repeat}.gguf"
        tokens = [f"t{i}" for i in range(size)]
        if repeat:
            tokens[-1] = tokens[7]
        writer = GGUFWriter(str(path), "llama")
        writer.add_token_list(tokens)
        writer.add_tensor("x", np.zeros(32, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        header = read_header(path)
        assert header.n_vocab == size
        assert header.repeated_token == ((7, size - 1, "t7") if repeat else None)
