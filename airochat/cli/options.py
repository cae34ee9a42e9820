"""The command-line options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
GpuLayersOpt = Annotated[str | None, typer.Option("--gpu-layers", help="N, auto (default) or all")]
RopeScaleOpt = Annotated[
    float | None, typer.Option("--rope-scale", help="linear RoPE factor (e.g. 4)")
]
RopeBaseOpt = Annotated[float | None, typer.Option("--rope-freq-base", help="RoPE base")]
MlockOpt = Annotated[bool, typer.Option("--mlock", help="lock the model in RAM")]
NoMmapOpt = Annotated[bool, typer.Option("--no-mmap", help="read the file instead of mapping")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="show llama.cpp's log")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="tracebacks on errors")]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="download a missing Hub model without asking")
]
SceneOpt = Annotated[
    Path | None, typer.Option("--scene", help="a roleplay scene file (YAML)", show_default=False)
]
