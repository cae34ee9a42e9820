"""`airochat bench` as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_bench(r: dict[str, Any], console: Console) -> None:
    head = Table(
        title=f"{r['model']} · {r['threads']} threads · ctx {r['n_ctx']}", show_header=False
    )
    head.add_column(style="bold")
    head.add_column(justify="right")
    head.add_row("load", f"{r['load_s']:.2f} s")
    head.add_row("prompt (history read cold)", f"{r['prompt_tps']:.1f} tok/s")
    head.add_row("decode, chat path", f"{r['decode_tps']:.1f} tok/s")
    head.add_row("decode, bare llama-cpp-python", f"{r['baseline_decode_tps']:.1f} tok/s")
    head.add_row("overhead", f"{r['overhead'] * 100:+.1f} %")
    head.add_row("last turn: TTFT cold", f"{r['last_turn_cold_ttft_s']:.2f} s")
    head.add_row("peak RSS", f"{r['peak_rss_bytes'] / 2**20:.0f} MiB")
    console.print(head)
    turns = Table(title="per turn")
    for col in ("turn", "history tokens", "new tokens read", "TTFT s", "decode tok/s", "generated"):
        turns.add_column(col, justify="right")
    for t in r["turns"]:
        turns.add_row(
            str(t["turn"]),
            str(t["history_tokens"]),
            str(t["prompt_eval_tokens"]),
            f"{t['ttft_s']:.3f}",
            f"{t['decode_tps']:.1f}",
            str(t["generated"]),
        )
    console.print(turns)
