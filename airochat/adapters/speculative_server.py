"""llama-server's own speculative decoding: its flags for a --speculate mode, and one greedy
/completion with the server's timings and draft counts (for bench's scenarios)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

# What a --speculate mode asks of llama-server (its 2026 flags: --spec-type and
# --spec-draft-n-max; -md alone no longer drafts). Measured best of its n-gram types on this
# machine: see BENCHMARKS.md.
SERVER_LOOKUP = "ngram-simple"


def spec_flags(spec_type: str) -> tuple[str, ...]:
    """llama-server's flags for one of its n-gram --spec-type values, with its own defaults
    for the lengths ("none": plain decoding)."""
    return () if spec_type == "none" else ("--spec-type", spec_type)


def flags_for_mode(mode: str, draft_model: str = "", draft_max: int = 16) -> tuple[str, ...]:
    """The llama-server flags for a --speculate mode (draft:MODEL: its resolved file). `auto`,
    the default, asks for none: llama-server's n-gram types have no back-off and measured
    below its plain decoding on an open chat here (BENCHMARKS.md); `lookup` asks for one."""
    if mode == "lookup":
        return spec_flags(SERVER_LOOKUP)
    if mode.startswith("draft:") and draft_model:
        return ("--spec-type", "draft-simple", "-md", draft_model,
                "--spec-draft-n-max", str(draft_max))  # fmt: skip
    return ()


def complete(url: str, prompt: Sequence[int], n: int, stop: Sequence[str] = ()) -> dict[str, Any]:
    """One greedy /completion of `prompt` (token ids), nothing cached: what it said (text and
    tokens) and the server's own timings."""
    body = {
        "prompt": list(prompt),
        "n_predict": n,
        "temperature": 0.0,
        "cache_prompt": False,
        "stop": list(stop),
        "id_slot": 0,
        "return_tokens": True,
    }
    response = httpx.post(f"{url}/completion", json=body, timeout=600.0)
    response.raise_for_status()
    data = response.json()
    timings = data.get("timings") or {}
    return {
        "content": str(data.get("content", "")),
        "tokens": _token_ids(data.get("tokens")),
        "predicted_n": int(timings.get("predicted_n", 0)),
        "predicted_s": float(timings.get("predicted_ms", 0.0)) / 1000,
        "draft_n": int(timings.get("draft_n", 0)),
        "draft_accepted": int(timings.get("draft_n_accepted", 0)),
    }


def started_server_flags(mode: str, draft_model: str = "") -> tuple[str, ...]:
    """What a llama-server started by airochat gets beyond the loading flags: a full-size
    sliding-window cache (Gemma 3: without it the server cannot reuse its cache and re-reads
    every previous reply; no effect on other models) and its speculation for the mode
    (draft:MODEL: `draft_model`, the draft's file)."""
    return ("--swa-full", *flags_for_mode(mode, draft_model))


def _token_ids(value: object) -> list[int]:
    """/completion's `tokens`, if it is a list of ids (a server of another version or a lying
    one may send anything there; then none, and lookup could predicts 0% of them)."""
    if isinstance(value, list) and all(isinstance(t, int) for t in value):
        return value
    return []
