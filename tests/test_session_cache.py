"""The model's KV cache kept beside a session file: a resumed chat reads only its new turn, and
a cache that does not belong (another model, context, a damaged file) is refused and the chat
read again -- across real processes, counted by llama.cpp."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.tiny_model import write_tiny_llama

ARGS = ("--max-tokens", "4", "--temperature", "0", "--threads", "1", "--system", "S.")


def ask(model: Path, text: str, session: Path, *extra: str) -> tuple[dict[str, object], str]:
    proc = run_cli("ask", str(model), text, "--session", str(session), "--json", *ARGS, *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_a_chat_continued_by_three_processes_reads_only_new_turns(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    session = tmp_path / "chat.json"
    ask(tiny_gguf, "hello world", session)
    kv = session.with_name("chat.json.kv")
    assert kv.exists() and stat.S_IMODE(kv.stat().st_mode) == 0o600
    for text in ("what is the capital", "and the world"):
        out, err = ask(tiny_gguf, text, session)
        assert "loaded the model's cache" in err
        new_turn = len(f" USER: {text} ASSISTANT: ") + 4  # generous: a token per char is more
        assert out["prompt_eval_tokens"] < new_turn < out["prompt_tokens"], out
    assert len(json.loads(session.read_text())["turns"]) == 3


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        ("truncate", "truncated"),
        ("flip", "damaged (checksum mismatch)"),
        ("context", "made with another context"),
        ("model", "made with another model"),
        ("garbage", "not an airochat cache file"),
    ],
)
def test_a_cache_that_does_not_belong_is_refused_and_the_chat_read_again(
    tiny_gguf: Path, tmp_path: Path, spoil: str, says: str
) -> None:
    session = tmp_path / "chat.json"
    ask(tiny_gguf, "hello world", session)
    kv = session.with_name("chat.json.kv")
    data = bytearray(kv.read_bytes())
    model, extra = tiny_gguf, ()
    if spoil == "truncate":
        kv.write_bytes(bytes(data[: len(data) - 100]))
    elif spoil == "flip":
        data[-10] ^= 0xFF
        kv.write_bytes(bytes(data))
    elif spoil == "context":
        extra = ("--ctx", "256")
    elif spoil == "model":
        model = write_tiny_llama(tmp_path / "tiny-llama.gguf", seed=7)  # same name, other weights
    else:
        kv.write_bytes(b"\x00garbage")
    out, err = ask(model, "and the world", session, *extra)
    assert f"ignored chat.json.kv: {says}; the chat is read again" in err, err
    assert out["prompt_eval_tokens"] == out["prompt_tokens"]  # read in full, and it worked
    assert len(json.loads(session.read_text())["turns"]) == 2


def test_no_session_cache_and_the_size_cap(
    tiny_gguf: Path, tmp_path: Path, isolated_dirs: Path
) -> None:
    session = tmp_path / "chat.json"
    ask(tiny_gguf, "hello", session, "--no-session-cache")
    assert not session.with_name("chat.json.kv").exists()
    conf = isolated_dirs / "config" / "airochat" / "config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text("session_cache_max_mb = 0\n")
    _, err = ask(tiny_gguf, "again", session)
    assert "over session_cache_max_mb (0): not saved" in err
    assert not session.with_name("chat.json.kv").exists()


@pytest.mark.slow
def test_resuming_the_demo_model_reads_only_the_new_turn(demo_gguf: Path, tmp_path: Path) -> None:
    session = tmp_path / "chat.json"
    args = ("--max-tokens", "64", "--temperature", "0", "--threads", "2", "--ctx", "2048")
    for text in ("Tell me about owls.", "And about their eyes?"):
        proc = run_cli("ask", "gemma3-270m", text, "--session", str(session), "--json", *args)
        assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["prompt_eval_tokens"] < 40 < out["prompt_tokens"], out
