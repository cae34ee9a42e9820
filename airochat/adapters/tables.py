"""`airochat bench` as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from airochat.domain.visible import visible


def _text(value: object) -> Text:
    """A cell or a title: a model's name, a file's metadata, a Hub listing. Shown with its
    control characters made visible, never read as rich markup (`[link=...]`)."""
    return Text(visible(str(value)))


def print_bench(r: dict[str, Any], console: Console) -> None:
    head = Table(
        title=_text(f"{r['model']} · {r['threads']} threads · ctx {r['n_ctx']}"),
        show_header=False,
    )
    head.add_column(style="bold")
    head.add_column(justify="right")
    head.add_row("load", f"{r['load_s']:.2f} s")
    head.add_row("prompt (history read cold)", f"{r['prompt_tps']:.1f} tok/s")
    head.add_row("decode, chat path", f"{r['decode_tps']:.1f} tok/s")
    head.add_row("decode, bare llama-cpp-python", f"{r['baseline_decode_tps']:.1f} tok/s")
    head.add_row("overhead", f"{r['overhead'] * 100:+.1f} %")
    if r.get("drafted"):
        share = f"{r['accepted']} of {r['drafted']} ({r['accepted'] / r['drafted']:.0%})"
        head.add_row("speculative drafts kept", share)
    head.add_row("last turn: TTFT cold", f"{r['last_turn_cold_ttft_s']:.2f} s")
    head.add_row("peak RSS", f"{r['peak_rss_bytes'] / 2**20:.0f} MiB")
    same = r.get("same_prompt") or {}
    if same:
        head.add_row(
            f"same prompt and seed, {same['tokens']} tokens",
            f"{same['chat_path_tps']:.1f} tok/s chat path, {same['raw_api_tps']:.1f} raw API",
        )
    resume = r.get("resume") or {}
    if resume:
        head.add_row(
            f"resume a {resume['history_tokens']}-token chat: TTFT",
            f"{resume['ttft_cached_s']:.2f} s with its cache, {resume['ttft_reread_s']:.2f} s "
            "read again",
        )
    console.print(head)
    turns = Table(title="per turn (* after old exchanges were dropped)")
    for col in ("turn", "history tokens", "new tokens read", "TTFT s", "decode tok/s", "generated"):
        turns.add_column(col, justify="right")
    for t in r["turns"]:
        turns.add_row(
            f"{t['turn']}{'*' if t.get('dropped') else ''}",
            str(t["history_tokens"]),
            str(t["prompt_eval_tokens"]),
            f"{t['ttft_s']:.3f}",
            f"{t['decode_tps']:.1f}",
            str(t["generated"]),
        )
    console.print(turns)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def print_info(d: dict[str, Any], console: Console) -> None:
    t = Table(title=_text(d["model"]), show_header=False)
    t.add_column(style="bold")
    t.add_column()
    rope = d["rope"]
    mem = d["memory"]["chosen"]
    specials = ", ".join(f"{k} {v['text']!r} ({v['id']})" for k, v in d["special_tokens"].items())
    rows = [
        ("file", f"{d['path']} ({_size(d['file_size'])}, GGUF v{d['gguf_version']})"),
        ("architecture", f"{d['architecture']} · {d['layers']} layers · {d['name']}"),
        ("parameters", f"{d['parameters'] / 1e6:,.0f} M"),
        ("quant", d["quant"]),
        ("trained context", str(d["trained_context"])),
        ("context used", f"{d['context']} ({d['context_reason']})"),
        (
            "RoPE",
            f"base {rope['freq_base']} · scaling {rope['scaling_type'] or 'none'}"
            + (f" ×{rope['scaling_factor']}" if rope["scaling_factor"] else "")
            + (
                f" · linear ×{rope['linear_scale_applied']} applied"
                if rope["linear_scale_applied"]
                else ""
            ),
        ),
        ("template", f"{d['template']} ({d['template_reason']})"),
        ("special tokens", specials or "-"),
        ("end of turn", ", ".join(d["end_of_turn_tokens"]) or "-"),
        ("KV cache", f"{d['kv_type']}, {d['kv_bytes_per_token'] / 1024:.1f} KiB per token"),
        ("memory, CPU only", _size(d["memory"]["cpu_only"]["ram_bytes"]) + " RAM"),
        (
            "memory, chosen",
            f"{mem['gpu_layers']} GPU layers: {_size(mem['ram_bytes'])} RAM + "
            f"{_size(mem['vram_bytes'])} VRAM ({mem['reason']})",
        ),
        ("threads", str(d["threads"])),
    ]
    for key, value in rows:
        t.add_row(key, _text(value))
    console.print(t)


TABLE_COLUMNS = 100  # narrower than this, `models` prints a record per model, not a table


def print_models(rows: list[dict[str, Any]], console: Console) -> None:
    """A table on a wide terminal; narrower (80 columns, or a pipe), a record per model: its
    alias, quant, size, downloaded, fits, and the repo indented under it (a table squeezed
    the repo to 3 characters a line)."""
    cells = [_model_cells(r) for r in rows]
    if console.width >= TABLE_COLUMNS:
        _models_table(cells, console)
        return
    widths = [max(len(c[i]) for c in [*cells, _HEAD]) for i in range(len(_HEAD) - 1)]
    gap = "  " if sum(widths) + 2 * len(widths) <= console.width else " "
    console.print(Text("models (catalog and downloaded)", style="bold"))
    for i, row in enumerate([_HEAD, *cells]):
        line = gap.join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        console.print(_text(line), style="bold" if i == 0 else None, overflow="fold")
        repo = _text(row[-1])
        repo.stylize("dim")
        console.print(Padding(repo, (0, 0, 0, 4), expand=False), overflow="fold")


_HEAD = ("alias", "quant", "size", "here", "fits", "repo")


def _model_cells(r: dict[str, Any]) -> tuple[str, ...]:
    size = _size(r["size"]) if r["size"] else "?"
    if r.get("size_estimated") and r["size"]:
        size = "~" + size
    fits = {True: "yes", False: "no", None: "?"}[r["fits"]]
    quant = r["quant"] + (" GGML" if r.get("format") == "ggml" else "")
    repo = r["repo"]
    if r.get("engine"):  # GPU-server weights: say where they run, and the local twin
        quant, size, fits = "AWQ/GPTQ", "-", "server"
        repo += f" (vLLM; here use {r['local']})" if r.get("local") else " (vLLM)"
    return (r["alias"] or "", quant, size, "yes" if r["downloaded"] else "", fits, repo)


def _models_table(cells: list[tuple[str, ...]], console: Console) -> None:
    t = Table(title="models (catalog and downloaded)", expand=False)
    # An alias is what the user types: never cut it. The repo folds across lines instead.
    t.add_column("alias", no_wrap=True)
    t.add_column("repo", overflow="fold", ratio=1)
    t.add_column("quant", no_wrap=True)
    t.add_column("size", no_wrap=True, justify="right")
    t.add_column("here", no_wrap=True)
    t.add_column("fits", no_wrap=True)
    for alias, quant, size, here, fits, repo in cells:
        t.add_row(*(_text(cell) for cell in (alias, repo, quant, size, here, fits)))
    console.print(t)
