"""`airochat bench` runs the real chat path and reports every field; speeds are not asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

FIELDS = {
    "model",
    "threads",
    "n_ctx",
    "reply_tokens",
    "load_s",
    "prompt_tps",
    "decode_tps",
    "baseline_decode_tps",
    "overhead",
    "peak_rss_bytes",
    "last_turn_cold_ttft_s",
    "turns",
    "resume",
    "same_prompt",
    "drafted",
    "accepted",
}
TURN_FIELDS = {
    "turn",
    "history_tokens",
    "ttft_s",
    "decode_tps",
    "prompt_eval_tokens",
    "generated",
    "cold_ttft_s",
    "dropped",
    "drafted",
    "accepted",
}


def check(result: dict[str, object], turns: int) -> None:
    assert set(result) == FIELDS
    rows = result["turns"]
    assert isinstance(rows, list) and len(rows) == turns
    assert all(set(r) == TURN_FIELDS for r in rows)
    assert rows[0]["history_tokens"] == 0
    hist = [r["history_tokens"] for r in rows]
    assert hist == sorted(hist) and len(set(hist)) == turns  # the chat grows every turn
    # with memory, a later turn reads only its new tokens, not the history
    for r in rows[1:]:
        assert r["prompt_eval_tokens"] < r["history_tokens"]
    assert result["peak_rss_bytes"] > 10 * 2**20
    assert result["baseline_decode_tps"] > 0 and result["decode_tps"] > 0


def test_bench_json_on_tiny_model(tiny_gguf: Path) -> None:
    proc = run_cli(
        "bench", str(tiny_gguf), "--turns", "3", "--reply-tokens", "8", "--json", "--threads", "1"
    )
    assert proc.returncode == 0, proc.stderr
    check(json.loads(proc.stdout), 3)
    assert "turn 3/3" in proc.stderr  # progress goes to stderr, JSON alone on stdout


def test_bench_past_the_context_limit_and_resume(tiny_gguf: Path) -> None:
    """The two long-chat scenarios: turns after old exchanges were dropped are marked and still
    read only their own tokens; a resumed session's first turn reads little with its cache."""
    proc = run_cli(
        "bench", str(tiny_gguf), "--turns", "12", "--reply-tokens", "12", "--ctx", "512",
        "--json", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rows = result["turns"]
    dropped = [r for r in rows if r["dropped"]]
    assert dropped and all("was kept" in r["dropped"] for r in dropped)
    before = max(r["prompt_eval_tokens"] for r in rows[1:] if not r["dropped"])
    assert max(r["prompt_eval_tokens"] for r in dropped) <= 3 * before
    resume = result["resume"]
    assert resume["cache_bytes"] > 0 and resume["read_cached"] < resume["read_reread"] / 2


def test_bench_table(tiny_gguf: Path) -> None:
    proc = run_cli("bench", str(tiny_gguf), "--turns", "2", "--reply-tokens", "4")
    assert proc.returncode == 0, proc.stderr
    assert "decode, bare llama-cpp-python" in proc.stdout and "per turn" in proc.stdout


@pytest.mark.slow
def test_bench_demo_with_plot(demo_gguf: Path, tmp_path: Path) -> None:
    png = tmp_path / "ttft.png"
    proc = run_cli(
        "bench",
        "gemma3-270m",
        "--turns",
        "3",
        "--reply-tokens",
        "16",
        "--json",
        "--plot",
        str(png),
        "--threads",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    check(result, 3)
    assert all(r["cold_ttft_s"] is not None for r in result["turns"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
