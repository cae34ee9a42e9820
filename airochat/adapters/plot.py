"""The bench plot: time to first token against history length, with and without KV reuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airochat.errors import UsageError


def write_ttft_plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'airochat[plot]'") from None
    turns = result["turns"]
    hist = [t["history_tokens"] for t in turns]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(hist, [t["ttft_s"] for t in turns], "o-", label="airochat (KV prefix reused)")
    cold = [t["cold_ttft_s"] for t in turns if t.get("cold_ttft_s") is not None]
    if len(cold) == len(turns):
        ax.plot(hist, cold, "s--", label="same prompt read cold (no reuse)")
    dropped = [(h, t["ttft_s"]) for h, t in zip(hist, turns, strict=True) if t.get("dropped")]
    if dropped:
        ax.plot(*zip(*dropped, strict=True), "rx", ms=9, label="after old exchanges were dropped")
    resume = result.get("resume") or {}
    if resume:
        at = resume["history_tokens"]
        ax.plot([at], [resume["ttft_reread_s"]], "v", label="resumed session, read again")
        ax.plot([at], [resume["ttft_cached_s"]], "^", label="resumed session, its cache loaded")
    ax.set_xlabel("tokens in the chat before the turn")
    ax.set_ylabel("time to first token (s)")
    ax.set_title(f"{result['model']} · {result['threads']} threads")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
