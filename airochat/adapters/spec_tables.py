"""bench --scenario's output: one table row per scenario and mode, and a bar plot of tok/s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airochat.errors import UsageError


def scenario_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """scenario, engine, mode, decode tok/s (the median of the runs), the runs' range, speed-up
    over plain, drafts kept, kept per batch, what lookup could predict, same text."""
    rows = []
    for res in results:
        runs = res["runs"]
        base = runs[0]["decode_tps"] if runs else 0.0
        for run in runs:
            rows.append(_row(res["scenario"], "airochat", run["mode"], run, base))
        for srv in res.get("server") or []:
            rows.append(_row(res["scenario"], "llama-server", srv["spec_type"], srv, base))
    return rows


def _row(scenario: str, engine: str, mode: str, run: dict[str, Any], base: float) -> list[str]:
    tps = float(run["decode_tps"])
    drafted, accepted = int(run["drafted"]), int(run["accepted"])
    kept = f"{accepted}/{drafted} ({accepted / drafted:.0%})" if drafted else "-"
    batches = int(run.get("batches", 0))
    per_batch = f"{accepted / batches:.2f}" if batches else "-"
    # of this row's own text: speculation and another engine's arithmetic change the text at
    # near-ties, and a text that repeats itself more is faster to draft
    copyable = f"{run['copyable']:.0%}" if "copyable" in run else ""
    same = "yes" if run["same_text"] else _parted(run.get("divergence") or {})
    speed = f"{tps / base:.2f}x" if base else "-"
    each = [float(t) for t in run.get("tps_runs") or []]
    spread = f"{min(each):.1f}-{max(each):.1f}" if len(each) > 1 else "-"
    return [scenario, engine, mode, f"{tps:.1f}", spread, speed, kept, per_batch, copyable, same]


def _parted(div: dict[str, Any]) -> str:
    if not div:
        return "no"
    return f"no: char {div['char']}, top-2 gap {div['top2_logit_gap']}"


HEADER = [
    "scenario", "engine", "mode", "decode tok/s", "runs' range", "vs off", "drafts kept",
    "kept per batch", "lookup could", "same text",
]  # fmt: skip


def print_scenarios(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(*HEADER)
    for row in scenario_rows(results):
        table.add_row(*map(escape, row))
    Console().print(table)


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in scenario_rows(results)]
    return "\n".join(lines)


def write_scenario_plot(results: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'airochat[plot]'") from None
    rows = scenario_rows(results)
    labels = sorted({f"{r[1]} {r[2]}" for r in rows}, key=lambda s: (s.startswith("llama"), s))
    scenarios = [r["scenario"] for r in results]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        found = [
            next((r for r in rows if r[0] == s and f"{r[1]} {r[2]}" == label), None)
            for s in scenarios
        ]
        values = [float(r[3]) if r else 0.0 for r in found]
        low, high = zip(*(_range(r, v) for r, v in zip(found, values, strict=True)), strict=True)
        xs = [j + i * width for j in range(len(scenarios))]
        ax.bar(xs, values, width, label=label, yerr=[low, high], capsize=2)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios)
    ax.set_ylabel("decode tokens/s (median; bars: the runs' range)")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _range(row: list[str] | None, median: float) -> tuple[float, float]:
    """How far below and above the median the runs went (0, 0 for a single run)."""
    if row is None or "-" not in row[4]:
        return 0.0, 0.0
    low, high = (float(x) for x in row[4].split("-"))
    return median - low, high - median
