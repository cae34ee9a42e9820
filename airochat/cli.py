"""The command line: parse options, call one service, turn errors into exit codes.

llama_cpp and huggingface_hub are imported only inside the commands that use them, so
`airochat --help` starts in the time it takes to import typer and rich.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from airochat import __version__, cli_hub, cli_tools
from airochat.cli_common import (
    errors_to_exit,
    load_overrides,
    make_fetch,
    open_session,
    settings_from,
)
from airochat.cli_options import (
    CtxOpt,
    DebugOpt,
    GpuLayersOpt,
    MaxTokensOpt,
    MlockOpt,
    ModelArg,
    NoMmapOpt,
    RepeatOpt,
    RopeBaseOpt,
    RopeScaleOpt,
    SceneOpt,
    SeedOpt,
    SystemOpt,
    TemperatureOpt,
    TemplateOpt,
    ThreadsOpt,
    TopKOpt,
    TopPOpt,
    VerboseOpt,
    YesOpt,
)
from airochat.cli_scene import load_scene_file, scene_app
from airochat.errors import ExitCode

app = typer.Typer(
    name="airochat",
    help="Chat with local GGUF models, made for the airoboros family.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
    gpu_layers: GpuLayersOpt = None,
    rope_scale: RopeScaleOpt = None,
    rope_freq_base: RopeBaseOpt = None,
    mlock: MlockOpt = False,
    no_mmap: NoMmapOpt = False,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="every turn stands alone (system + message)")
    ] = False,
    multiline: Annotated[
        bool, typer.Option("--multiline", help="Enter adds a line, Alt+Enter sends")
    ] = False,
    no_input_history: Annotated[
        bool, typer.Option("--no-input-history", help="do not keep typed lines in a file")
    ] = False,
    plain_output: Annotated[
        bool, typer.Option("--plain-output", help="replies as plain text, not markdown")
    ] = False,
    no_stats: Annotated[bool, typer.Option("--no-stats", help="no stats line per reply")] = False,
    session_file: Annotated[
        Path | None,
        typer.Option("--session", help="load this chat file if present; save after each turn"),
    ] = None,
    yes: YesOpt = False,
    scene: SceneOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Chat interactively. Enter sends, Alt+Enter adds a line, /help lists commands."""
    with errors_to_exit(debug):
        settings = _shared_settings(locals(), history=False if no_history else None)
        flags = {
            "multiline": multiline,
            "no_input_history": no_input_history,
            "plain_output": plain_output,
            "no_stats": no_stats,
            "yes": yes,
        }
        flags_scene = scene
        _start_repl(
            settings, model or settings.model, system, verbose, session_file, flags, flags_scene
        )


_SHARED = (
    "template",
    "temperature",
    "top_p",
    "top_k",
    "repeat_penalty",
    "max_tokens",
    "seed",
    "ctx",
    "threads",
)


def _shared_settings(opts: dict[str, Any], **extra: Any) -> Any:
    """Settings from the options `run` and `ask` share (their parameters, by name)."""
    loading = load_overrides(
        opts["gpu_layers"],
        opts["rope_scale"],
        opts["rope_freq_base"],
        opts["mlock"],
        opts["no_mmap"],
    )
    return settings_from(**{k: opts[k] for k in _SHARED}, **loading, **extra)


def _start_repl(
    settings: Any,
    name: str,
    system: str | None,
    verbose: bool,
    session_file: Path | None,
    flags: dict[str, bool],
    scene_file: Path | None = None,
) -> None:
    from airochat.adapters import locations
    from airochat.adapters.terminal import InputOptions, TerminalIO
    from airochat.domain.templates import get_template
    from airochat.services import loader
    from airochat.services.commands import Commands
    from airochat.services.repl import context_gauge, run_repl
    from airochat.services.sessions import load_session

    holder: dict[str, Any] = {}
    history = settings.input_history and not flags["no_input_history"]
    options = InputOptions(
        multiline=flags["multiline"],
        history_file=locations.data_dir() / "input_history" if history else None,
        commands=[n[4:] for n in dir(Commands) if n.startswith("cmd_")],
        toolbar=lambda: context_gauge(holder["session"]) if "session" in holder else "",
    )
    io = TerminalIO(options=options, markdown=settings.markdown and not flags["plain_output"])
    io.notice(f"Loading {name} ...")
    fetch = make_fetch(settings, flags["yes"], interactive=sys.stdin.isatty())
    session, plan = open_session(settings, name, system, verbose, fetch)
    holder["session"] = session

    def template_by_name(tname: str) -> Any:
        if tname == "gguf":
            return loader.make_template(loader.Choice("gguf", ""), plan.header, session.engine)
        return get_template(tname)

    from airochat.services.roleplay import RoleplaySession

    roleplay = RoleplaySession(session, load_scene_file(scene_file)) if scene_file else None
    if session_file is not None and session_file.exists():
        saved = load_session(session, session_file, template_by_name)
        io.notice(f"Resumed {len(saved.turns)} exchange(s) from {session_file}")
        if roleplay is None:
            roleplay = RoleplaySession.from_saved(session, saved.extra)
    if roleplay is not None:
        io.scene = (roleplay.scene.names, roleplay.scene.user)
    memory = "on" if session.conversation.history else "off (--no-history)"
    where = f"{plan.offload.n_gpu_layers} GPU layers" if plan.offload.n_gpu_layers else "CPU"
    io.notice(
        f"{plan.model.name} · template {session.template.name} · context {session.engine.n_ctx}"
        f" · {where}, {plan.threads} threads · memory {memory}"
        " · /help for commands, Ctrl-D to leave"
    )
    stats = settings.show_stats and not flags["no_stats"]
    run_repl(session, io, template_by_name, session_file, stats, roleplay)


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
    gpu_layers: GpuLayersOpt = None,
    rope_scale: RopeScaleOpt = None,
    rope_freq_base: RopeBaseOpt = None,
    mlock: MlockOpt = False,
    no_mmap: NoMmapOpt = False,
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
    yes: YesOpt = False,
    scene: SceneOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Answer one message and exit: for scripts and pipes."""
    with errors_to_exit(debug):
        settings = _shared_settings(locals())
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
        spec.allow_empty = scene is not None  # a scene's opening is a first turn of its own
        text = build_message(spec)
        roleplay_scene = load_scene_file(scene) if scene is not None else None
        if print_prompt:
            _print_prompt(settings, model, system, text, as_json, roleplay_scene)
            return
        fetch = make_fetch(settings, yes, interactive=False)
        session, _plan = open_session(settings, model, system, verbose, fetch)
        if spec.functions is not None:
            _answer_function(session, text, spec.loaded_functions, as_json)
        elif roleplay_scene is not None:
            from airochat.services.roleplay import RoleplaySession

            rp = RoleplaySession(session, roleplay_scene)
            _answer(session, text, as_json, events=rp.start(text))
        else:
            _answer(session, text, as_json)


def _print_prompt(
    settings: Any, model: str, system: str | None, text: str, as_json: bool, scene: Any = None
) -> None:
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
    stop = list(tpl.stop)
    if scene is not None:
        from airochat.domain.scene import render_opening, stop_strings

        opening = render_opening(scene)
        text = f"{opening}\n\n{text}" if text else opening
        speaker = scene.names[0] if scene.mode == "single" else None
        stop += [s for s in stop_strings(scene, speaker) if s not in stop]
    rendered = render(tpl.first_turn(sys_prompt, text))
    if scene is not None and scene.mode == "single":
        rendered += f"{scene.names[0]}:"
    if as_json:
        out = {"prompt": rendered, "stop": stop, "template": tpl.name}
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(rendered + "\n")


def _answer(session: Any, text: str, as_json: bool, events: Any = None) -> None:
    from airochat.adapters.engine import Done, TextChunk

    done: Done | None = None
    for event in events if events is not None else session.send(text):
        if isinstance(event, TextChunk):
            if not as_json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, Done):
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


cli_tools.register(app)
cli_hub.register(app)
app.add_typer(scene_app, name="scene")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        # `airochat ask ... | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        sys.exit(int(ExitCode.OK))
