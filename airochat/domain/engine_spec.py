"""Where a chat's model runs, decided once by the command line and handed to `open_engine`.

Three kinds, one frozen value each: llama-cpp-python in this process, a llama-server that
airochat starts (optionally over llama.cpp RPC workers), or a server already running at a URL
(llama-server or OpenAI-compatible). Nothing here opens anything: it is the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ServerKind = Literal["", "llama", "openai"]  # "": ask the server what it is


@dataclass(frozen=True)
class LocalEngine:
    """llama-cpp-python in airochat's own process, on MODEL's file."""

    model: str | None


@dataclass(frozen=True)
class StartedServer:
    """A llama-server started here on MODEL's file, stopped when airochat ends; its layers on
    RPC `workers` (host:port) when there are any."""

    model: str | None
    binary: str | None = None  # None: llama_server from the config, else PATH
    workers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunningServer:
    """A server already running at `url`. `model` (optional) picks the template, and is the
    id an OpenAI-compatible server knows the model by."""

    url: str
    model: str | None = None
    kind: ServerKind = ""
    api_key: str | None = None
    # Options given on the command line that such a server decides for itself (--ctx ...):
    # warned about, not silently dropped.
    server_owned: tuple[str, ...] = ()


EngineSpec = LocalEngine | StartedServer | RunningServer
