"""The command-line options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    typer.Option("--yes", "-y", help="download a missing Hub model without asking", metavar=""),
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
