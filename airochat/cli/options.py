"""The command-line options shared by several commands, declared once.

Each option is one `Annotated` alias (its flag, help and metavar). The options `run`, `ask` and
`bench` share are fields of frozen dataclasses, grouped as their help shows them (sampling, the
model's loading, where it runs); `@with_options(ChatOptions)` adds every field to a command as
a typer option and hands the command one `ChatOptions` value. A new shared option is one field.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_type_hints

import typer
from typer.models import OptionInfo

ModelArg = Annotated[
    str | None,
    typer.Argument(
        help="alias from models.txt, owner/repo[:QUANT], or a path to a .gguf file",
        show_default=False,
        metavar="MODEL",
    ),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option("--template", help="prompt template (airoboros, chatml, ...)", metavar="NAME"),
]
SystemOpt = Annotated[
    str | None,
    typer.Option("--system", help="system prompt (default: the template's)", metavar="TEXT"),
]
TemperatureOpt = Annotated[
    float | None, typer.Option("--temperature", help="default 0.5", metavar="T")
]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="default 1.0", metavar="P")]
TopKOpt = Annotated[int | None, typer.Option("--top-k", help="0 disables (default)", metavar="K")]
RepeatOpt = Annotated[
    float | None, typer.Option("--repeat-penalty", help="default 1.0", metavar="R")
]
MaxTokensOpt = Annotated[
    int | None, typer.Option("--max-tokens", help="reply limit (2048)", metavar="N")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="-1 for random", metavar="N")]
CtxOpt = Annotated[int | None, typer.Option("--ctx", help="context length in tokens", metavar="N")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="default: physical cores", metavar="N")
]
GpuLayersOpt = Annotated[
    str | None, typer.Option("--gpu-layers", help="N, auto (default) or all", metavar="N|auto|all")
]
RopeScaleOpt = Annotated[
    float | None, typer.Option("--rope-scale", help="linear RoPE factor (e.g. 4)", metavar="F")
]
RopeBaseOpt = Annotated[
    float | None, typer.Option("--rope-freq-base", help="RoPE base", metavar="B")
]
MlockOpt = Annotated[bool, typer.Option("--mlock", help="lock the model in RAM", metavar="")]
NoMmapOpt = Annotated[
    bool, typer.Option("--no-mmap", help="read the file instead of mapping", metavar="")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="show llama.cpp's log", metavar="")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="tracebacks on errors", metavar="")]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="no questions: fetch a missing model, run plan steps", metavar=""
    ),
]
SceneOpt = Annotated[
    Path | None,
    typer.Option(
        "--scene", help="a roleplay scene file (YAML)", show_default=False, metavar="FILE"
    ),
]
KvTypeOpt = Annotated[
    str | None,
    typer.Option("--kv-type", help="KV cache type: f16 (default), q8_0, q4_0", metavar="TYPE"),
]
SpeculateOpt = Annotated[
    str | None,
    typer.Option(
        "--speculate",
        help="speculative decoding: off, lookup (drafts from the chat's own tokens), auto "
        "(the default: lookup only where drafts pay) or draft:MODEL",
        metavar="MODE",
    ),
]
NoSessionCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-session-cache", help="do not keep the model's cache beside --session", metavar=""
    ),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="AIROCHAT_SERVER",
        help="chat through a running server: llama-server or OpenAI-compatible (vLLM ...)",
        metavar="URL",
    ),
]
ServerKindOpt = Annotated[
    str | None,
    typer.Option("--server-kind", help="llama or openai (default: ask the server)", metavar="KIND"),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="AIROCHAT_API_KEY", help="the server's API key", metavar="KEY",
        show_default=False,
    ),
]  # fmt: skip
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine", help="local (default) or llama-server (started here)", metavar="ENGINE"
    ),
]
LlamaServerOpt = Annotated[
    str | None,
    typer.Option("--llama-server", help="the llama-server binary (else PATH)", metavar="PATH"),
]
RpcOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        help="llama.cpp rpc-server workers host:port,... to hold the layers (implies "
        "--engine llama-server)",
        metavar="HOSTS",
    ),
]
SessionOpt = Annotated[
    Path | None,
    typer.Option(
        "--session", help="load this chat file if present; save after each turn", metavar="FILE"
    ),
]
ContinueOpt = Annotated[
    bool,
    typer.Option(
        "--continue", "-c", help="continue the latest kept chat (of MODEL, if named)", metavar=""
    ),
]
ChatIdOpt = Annotated[
    int | None,
    typer.Option(
        "--chat", help="continue kept chat ID (`airochat chats` lists them)", metavar="ID"
    ),
]
IncognitoOpt = Annotated[
    bool, typer.Option("--incognito", help="keep this chat out of the chat library", metavar="")
]


# -- the shared options, grouped -------------------------------------------------------------


@dataclass(frozen=True)
class SamplingOptions:
    """How the reply is sampled (run, ask, bench)."""

    PANEL: ClassVar[str] = "Sampling"
    temperature: TemperatureOpt = None
    top_p: TopPOpt = None
    top_k: TopKOpt = None
    repeat_penalty: RepeatOpt = None
    seed: SeedOpt = None


@dataclass(frozen=True)
class LoadingOptions:
    """How a model file is loaded here (a running server decides these itself)."""

    PANEL: ClassVar[str] = "Loading the model"
    ctx: CtxOpt = None
    threads: ThreadsOpt = None
    gpu_layers: GpuLayersOpt = None
    rope_scale: RopeScaleOpt = None
    rope_freq_base: RopeBaseOpt = None
    mlock: MlockOpt = False
    no_mmap: NoMmapOpt = False
    kv_type: KvTypeOpt = None
    speculate: SpeculateOpt = None

    def given(self) -> tuple[str, ...]:
        """The options given, as typed: a running server is told it decides them."""
        named = ((f.name, getattr(self, f.name)) for f in fields(self))
        return tuple(f"--{k.replace('_', '-')}" for k, v in named if v not in (None, False))


@dataclass(frozen=True)
class WhereOptions:
    """Where the model runs: here (default), a llama-server started here, a running server."""

    PANEL: ClassVar[str] = "Where the model runs"
    server: ServerOpt = None
    server_kind: ServerKindOpt = None
    api_key: ApiKeyOpt = None
    engine: EngineOpt = None
    llama_server: LlamaServerOpt = None
    rpc: RpcOpt = None


@dataclass(frozen=True)
class ChatOptions:
    """The options `run` and `ask` share."""

    template: TemplateOpt = None
    system: SystemOpt = None
    max_tokens: MaxTokensOpt = None
    session: SessionOpt = None
    resume_latest: ContinueOpt = False
    chat_id: ChatIdOpt = None
    incognito: IncognitoOpt = False
    no_session_cache: NoSessionCacheOpt = False
    scene: SceneOpt = None
    yes: YesOpt = False
    verbose: VerboseOpt = False
    debug: DebugOpt = False
    sampling: SamplingOptions = SamplingOptions()
    loading: LoadingOptions = LoadingOptions()
    where: WhereOptions = WhereOptions()


@dataclass(frozen=True)
class BenchOptions:
    """The options `bench` shares with `run` and `ask`."""

    verbose: VerboseOpt = False
    debug: DebugOpt = False
    sampling: SamplingOptions = SamplingOptions()
    loading: LoadingOptions = LoadingOptions()
    where: WhereOptions = WhereOptions()


# -- the decorator ---------------------------------------------------------------------------

Options = TypeVar("Options")
R = TypeVar("R")


def _flat(kind: type, panel: str | None = None) -> list[tuple[str, Any, Any]]:
    """(name, annotation, default) of every option in `kind`, groups flattened in order;
    a group's options go to its own help panel."""
    out = []
    hints = get_type_hints(kind, include_extras=True)
    for f in fields(kind):
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            out += _flat(hint, getattr(hint, "PANEL", None))
        else:
            out.append((f.name, _in_panel(hint, panel) if panel else hint, f.default))
    return out


def _in_panel(annotation: Any, panel: str) -> Any:
    """The option's declaration, shown in the help panel `panel`."""
    base, *meta = get_args(annotation)
    infos = [copy.copy(m) for m in meta if isinstance(m, OptionInfo)]
    for info in infos:
        info.rich_help_panel = panel
    return Annotated[(base, *infos)]


def _build(kind: type[Options], values: dict[str, Any]) -> Options:
    """The options value from typer's flat keyword arguments."""
    made: dict[str, Any] = {}
    for f in fields(kind):  # type: ignore[arg-type]
        if is_dataclass(f.default):
            made[f.name] = _build(type(f.default), values)
        else:
            made[f.name] = values.pop(f.name)
    return kind(**made)


def with_options(kind: type[Options]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Add every option of `kind` to a typer command, after its own parameters, and call it
    with them gathered in one `kind` value as its parameter `opts`."""
    shared = _flat(kind)

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "opts"
        ]
        names = {p.name for p in own}
        assert not names & {n for n, _, _ in shared}, f"{command.__name__}: option clash"

        @functools.wraps(command)
        def run(**kwargs: Any) -> R:
            opts = _build(kind, {n: kwargs.pop(n) for n, _, _ in shared})
            return command(opts, **kwargs)

        extra = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
            for n, a, d in shared
        ]
        run.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
        run.__annotations__ = {}  # typer reads the signature above, not the source's strings
        return run

    return decorate
