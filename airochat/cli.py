"""The command line: parse options, call one service, turn errors into exit codes.

llama_cpp and huggingface_hub are imported only inside the commands that use them, so
`airochat --help` starts in the time it takes to import typer and rich.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from airochat import __version__
from airochat.errors import AirochatError, ConfigError, ExitCode, UsageError

app = typer.Typer(
    name="airochat",
    help="Chat with local GGUF models, made for the airoboros family.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelArg = Annotated[
    str | None,
    typer.Argument(help="alias from models.txt, or a path to a .gguf file", show_default=False),
]
TemplateOpt = Annotated[
    str | None, typer.Option("--template", help="prompt template (airoboros, chatml, ...)")
]
SystemOpt = Annotated[
    str | None, typer.Option("--system", help="system prompt (default: the template's)")
]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="default 0.5")]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="default 1.0")]
TopKOpt = Annotated[int | None, typer.Option("--top-k", help="0 disables (default)")]
RepeatOpt = Annotated[float | None, typer.Option("--repeat-penalty", help="default 1.0")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="reply limit (2048)")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="-1 for random")]
CtxOpt = Annotated[int | None, typer.Option("--ctx", help="context length in tokens")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="default: physical cores")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="show llama.cpp's log")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="tracebacks on errors")]


def _err(message: str) -> None:
    from rich.text import Text

    from airochat.adapters.terminal import make_console

    make_console(stderr=True).print(Text(f"airochat: error: {message}", style="red"))


@contextmanager
def _errors_to_exit(debug: bool) -> Iterator[None]:
    try:
        yield
    except AirochatError as exc:
        if debug:
            raise
        _err(str(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _settings(**overrides: Any) -> Any:
    from airochat.adapters import locations
    from airochat.domain.config import load_settings

    base = load_settings(
        locations.data_file("configs/default.toml"), locations.config_dir() / "config.toml"
    )
    try:
        return base.with_overrides(**overrides)
    except ConfigError as exc:  # a bad option value, not a bad file
        raise UsageError(f"bad option: {exc}") from None


def _session(settings: Any, model: str, system: str | None, verbose: bool) -> Any:
    from airochat.services import loader
    from airochat.services.chat import ChatSession

    plan = loader.plan(settings, model)
    engine = loader.load(plan, settings, verbose=verbose)
    template = loader.make_template(plan.template, plan.header, engine)
    session = ChatSession(
        engine,
        template,
        system if system is not None else (settings.system or None),
        settings.sampling,
        history=settings.history,
        model_name=plan.model.name,
    )
    return session, plan


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airochat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = False,
) -> None:
    """Chat with local GGUF models, made for the airoboros family."""


@app.command()
def run(
    model: ModelArg = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    repeat_penalty: RepeatOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="every turn stands alone (system + message)")
    ] = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Chat interactively. Enter sends, Alt+Enter adds a line, /help lists commands."""
    with _errors_to_exit(debug):
        settings = _settings(
            template=template,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repeat_penalty=repeat_penalty,
            max_tokens=max_tokens,
            seed=seed,
            ctx=ctx,
            threads=threads,
            history=False if no_history else None,
        )
        from airochat.adapters.terminal import TerminalIO
        from airochat.services.repl import run_repl

        io = TerminalIO()
        name = model or settings.model
        io.notice(f"Loading {name} ...")
        session, plan = _session(settings, name, system, verbose)
        memory = "on" if settings.history else "off (--no-history)"
        io.notice(
            f"{plan.model.name} · template {plan.template.value} · context {session.engine.n_ctx}"
            f" · memory {memory} · /help for commands, Ctrl-D to leave"
        )
        run_repl(session, io)


@app.command()
def ask(
    model: Annotated[str, typer.Argument(help="alias from models.txt, or a path to a .gguf")],
    prompt: Annotated[
        str | None, typer.Argument(help="the message; read from stdin when piped")
    ] = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    repeat_penalty: RepeatOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    context: Annotated[
        list[str] | None,
        typer.Option("--context", help="closed-context QA: a document (repeatable; - is stdin)"),
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="key=value for every context block")
    ] = None,
    no_guess: Annotated[
        bool, typer.Option("--no-guess", help="add: Don't make up answers if you don't know.")
    ] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="append PLAINFORMAT: code without prose")
    ] = False,
    functions: Annotated[
        Path | None,
        typer.Option("--functions", help="YAML/JSON functions: print the model's choice as JSON"),
    ] = None,
    print_prompt: Annotated[
        bool, typer.Option("--print-prompt", help="print the exact prompt and exit")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Answer one message and exit: for scripts and pipes."""
    with _errors_to_exit(debug):
        settings = _settings(
            template=template,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repeat_penalty=repeat_penalty,
            max_tokens=max_tokens,
            seed=seed,
            ctx=ctx,
            threads=threads,
        )
        from airochat.services.prompts import MessageSpec, build_message

        stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
        spec = MessageSpec(
            prompt=prompt,
            stdin=stdin,
            contexts=context or [],
            meta=meta or [],
            no_guess=no_guess,
            plain=plain,
            functions=functions,
        )
        text = build_message(spec)
        if print_prompt:
            _print_prompt(settings, model, system, text, as_json)
            return
        session, _plan = _session(settings, model, system, verbose)
        if spec.functions is not None:
            _answer_function(session, text, spec.loaded_functions, as_json)
        else:
            _answer(session, text, as_json)


def _print_prompt(settings: Any, model: str, system: str | None, text: str, as_json: bool) -> None:
    from airochat.domain.templates import render
    from airochat.services import loader

    plan = loader.plan(settings, model)
    if plan.template.value == "gguf":  # needs the vocabulary's special tokens
        engine = loader.load(plan, settings, vocab_only=True)
        tpl = loader.make_template(plan.template, plan.header, engine)
    else:
        from airochat.domain.templates import get_template

        tpl = get_template(plan.template.value)
    sys_prompt = system if system is not None else (settings.system or tpl.default_system)
    rendered = render(tpl.first_turn(sys_prompt, text))
    if as_json:
        out = {"prompt": rendered, "stop": list(tpl.stop), "template": tpl.name}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(rendered + "\n")


def _answer(session: Any, text: str, as_json: bool) -> None:
    from airochat.adapters.engine import Done, TextChunk

    done: Done | None = None
    for event in session.send(text):
        if isinstance(event, TextChunk):
            if not as_json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        else:
            done = event
    assert done is not None
    if as_json:
        out = {
            "text": done.text,
            "model": session.model_name,
            "template": session.template.name,
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.generated,
            "ttft_s": round(done.ttft_s, 4),
            "tokens_per_s": round(done.tokens_per_s, 2),
            "finish_reason": done.finish_reason,
        }
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write("\n")
    if done.finish_reason == "interrupted":
        raise typer.Exit(int(ExitCode.INTERRUPTED))


def _answer_function(session: Any, text: str, functions: dict[str, Any], as_json: bool) -> None:
    from airochat.adapters.engine import Done
    from airochat.domain.functions import parse_call

    done = next(e for e in session.send(text) if isinstance(e, Done))
    call = parse_call(done.text, functions)
    if as_json:
        out = {"call": call, "text": done.text, "finish_reason": done.finish_reason}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo(json.dumps(call, ensure_ascii=False, indent=2))


@app.command()
def bench(
    model: ModelArg = None,
    turns: Annotated[int, typer.Option("--turns", min=1, help="scripted chat turns")] = 6,
    reply_tokens: Annotated[
        int, typer.Option("--reply-tokens", min=2, help="reply length cap per turn")
    ] = 64,
    threads: ThreadsOpt = None,
    ctx: CtxOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="fixed for repeatable runs")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of time to first token vs history")
    ] = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure speed on the chat path (decode, prompt, TTFT per turn) against bare llama.cpp."""
    with _errors_to_exit(debug):
        from airochat.adapters.terminal import make_console
        from airochat.services.bench import run_bench

        settings = _settings(threads=threads, ctx=ctx, seed=seed)
        err = make_console(stderr=True)
        name = model or settings.model
        session, _plan = _session(settings, name, None, verbose)
        result = run_bench(
            session,
            turns,
            reply_tokens,
            plot=plot is not None,
            progress=lambda msg: err.print(f"[dim]{msg}[/dim]"),
        ).to_dict()
        if plot is not None:
            from airochat.adapters.plot import write_ttft_plot

            write_ttft_plot(result, plot)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            from airochat.adapters.bench_table import print_bench

            print_bench(result, make_console())


@app.command()
def templates() -> None:
    """List the prompt templates, each with a one-line example."""
    from airochat.domain.templates import TEMPLATES

    for tpl in TEMPLATES.values():
        typer.echo(f"{tpl.name:<14} {tpl.summary}")
        typer.echo(f"{'':<14} {tpl.example()}")
    typer.echo(f"{'gguf':<14} the model's own tokenizer.chat_template, rendered in a sandbox")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        # `airochat ask ... | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        sys.exit(int(ExitCode.OK))
