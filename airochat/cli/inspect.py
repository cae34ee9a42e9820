"""Commands that inspect and measure: info, bench, templates."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from airochat.cli.edge import errors_to_exit, note, settings_from
from airochat.cli.help import command
from airochat.cli.options import (
    BenchOptions,
    CtxOpt,
    DebugOpt,
    GpuLayersOpt,
    KvTypeOpt,
    ModelArg,
    with_options,
)
from airochat.cli.request import engine_spec, server_url, settings_for

BENCH_SEED = 42  # fixed unless --seed: runs compare


def register(app: typer.Typer) -> None:
    command(app, bench)
    command(app, info)
    command(app, templates)


@with_options(BenchOptions)
def bench(
    opts: BenchOptions,
    model: ModelArg = None,
    turns: Annotated[
        int, typer.Option("--turns", min=1, help="scripted chat turns", metavar="N")
    ] = 6,
    reply_tokens: Annotated[
        int, typer.Option("--reply-tokens", min=2, help="reply length cap per turn", metavar="N")
    ] = 64,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object on stdout", metavar="")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG of time to first token vs history", metavar="FILE.png"),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            help="speculative decoding measured instead: qa, code, chat or all (each --speculate "
            "mode against plain decoding; llama-server's --spec-type too, with --llama-server)",
            metavar="NAME",
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            max=50,
            help="--scenario: play each mode N times in turn and report the median speed",
            metavar="N",
        ),
    ] = 3,
) -> None:
    """Measure speed on the chat path (decode, prompt, TTFT per turn) against the engine's
    own completion API (bare llama-cpp-python, or llama-server's /completion). The seed is
    fixed (42) unless --seed says otherwise."""
    with errors_to_exit(opts.debug) as cancel:
        from rich.text import Text

        from airochat.adapters.terminal import make_console
        from airochat.domain.visible import visible
        from airochat.services.bench import run_bench
        from airochat.services.launch import ChatRequest, open_chat

        seed = BENCH_SEED if opts.sampling.seed is None else opts.sampling.seed
        sampling = replace(opts.sampling, seed=seed)
        settings = settings_for(sampling, opts.loading, opts.where)
        err = make_console(stderr=True)
        name = model or (None if server_url(opts.where, settings) else settings.model)
        spec = engine_spec(opts.where, opts.loading, settings, name)
        request = ChatRequest(spec, settings, verbose=opts.verbose, progress=note, cancel=cancel)
        ready = open_chat(request)
        try:
            for line in ready.notes:
                note(line)
            server = opts.where.llama_server or settings.llama_server or None
            if scenario is not None:
                return _scenarios(ready, scenario, reply_tokens, repeat, server, as_json, plot)
            result = run_bench(
                ready.chat,
                turns,
                reply_tokens,
                plot=plot is not None,
                progress=lambda msg: err.print(Text(visible(msg), style="dim")),
                probes=ready.probes,
            ).to_dict()
        finally:
            ready.close()
        _show(result, plot, as_json)


def _scenarios(
    ready: Any,
    scenario: str,
    reply_tokens: int,
    repeat: int,
    server: str | None,
    as_json: bool,
    plot: Path | None,
) -> None:
    """bench --scenario: each --speculate mode on the scenario's prompts (services/spec_bench)."""
    from airochat.adapters.server_process import ServerStartError, find_binary
    from airochat.adapters.spec_tables import print_scenarios, write_scenario_plot
    from airochat.services.spec_bench import run_scenarios, scenario_names

    names = scenario_names(scenario)
    try:
        binary: str | None = find_binary(server)
    except ServerStartError:
        binary = None
        note("no llama-server found (--llama-server PATH): its --spec-type runs are left out")
    results = [
        r.to_dict()
        for r in run_scenarios(
            ready.chat, names, max(reply_tokens, 2), binary, progress=note, repeat=repeat
        )
    ]
    if plot is not None:
        write_scenario_plot(results, plot)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        print_scenarios(results)


def _show(result: dict[str, Any], plot: Path | None, as_json: bool) -> None:
    if plot is not None:
        from airochat.adapters.plot import write_ttft_plot

        write_ttft_plot(result, plot)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        from airochat.adapters.tables import print_bench
        from airochat.adapters.terminal import make_console

        print_bench(result, make_console())


def info(
    model: Annotated[
        str,
        typer.Argument(
            help="alias from models.txt, owner/repo[:QUANT], or a .gguf path", metavar="MODEL"
        ),
    ],
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object on stdout", metavar="")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Show a model's metadata, template, context, RoPE and memory estimate."""
    with errors_to_exit(debug):
        from airochat.services.info import model_info

        data = model_info(settings_from(ctx=ctx, gpu_layers=gpu_layers, kv_type=kv_type), model)
        if as_json:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            from airochat.adapters.tables import print_info
            from airochat.adapters.terminal import make_console

            print_info(data, make_console())


def templates() -> None:
    """List the prompt templates, each with a one-line example."""
    from airochat.domain.templates import TEMPLATES

    for tpl in TEMPLATES.values():
        typer.echo(f"{tpl.name:<14} {tpl.summary}")
        typer.echo(f"{'':<14} {tpl.example()}")
    typer.echo(f"{'gguf':<14} the model's own tokenizer.chat_template, rendered in a sandbox")
