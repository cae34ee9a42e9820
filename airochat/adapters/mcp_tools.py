"""Tools from an MCP server over stdio, through the official `mcp` Python SDK.

Each operation starts the server, does one thing (list its tools, or call one) and stops it:
a plan has a few steps and no server outlives the call that needed it. A plan's input is one
string: it becomes the tool's only argument, or, for a tool with several, a JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class McpError(Exception):
    """The server could not be started, listed or called; the message says why."""


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str
    params: tuple[str, ...]  # the input schema's property names
    required: tuple[str, ...]


def _sdk() -> Any:
    try:
        import mcp
        from mcp.client.stdio import stdio_client
    except ImportError:
        raise McpError("mcp: tools need the mcp package: pip install 'airochat[mcp]'") from None
    return mcp, stdio_client


def _run(argv: Sequence[str], timeout_s: float, work: Any) -> Any:
    mcp, stdio_client = _sdk()
    # The server gets our environment, as a user's command tool does (the SDK's default
    # keeps only a few variables: PYTHONPATH and virtual environments would be lost).
    params = mcp.StdioServerParameters(command=argv[0], args=list(argv[1:]), env=dict(os.environ))

    async def session() -> Any:
        with open(os.devnull, "w") as quiet:  # the server's log never reaches the terminal
            async with (
                stdio_client(params, errlog=quiet) as (read, write),
                mcp.ClientSession(read, write) as client,
            ):
                await client.initialize()
                return await work(client)

    async def bounded() -> Any:
        return await asyncio.wait_for(session(), timeout_s)

    try:
        return asyncio.run(bounded())
    except (TimeoutError, asyncio.TimeoutError):
        raise McpError(f"MCP server {argv[0]}: no answer within {timeout_s:g} s") from None
    except McpError:
        raise
    except Exception as exc:  # the SDK and anyio raise many kinds (and groups of them)
        raise McpError(f"MCP server {argv[0]}: {_said(exc)}") from None


def _said(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return _said(inner[0])
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _field(obj: Any, *names: str) -> Any:
    """A field under its mcp 2 name or its mcp 1 name."""
    return next((getattr(obj, n) for n in names if hasattr(obj, n)), None)


def list_tools(argv: Sequence[str], timeout_s: float) -> list[McpTool]:
    async def work(client: Any) -> Any:
        return await client.list_tools()

    listed = _run(argv, timeout_s, work)
    tools = []
    for tool in listed.tools:
        schema = _field(tool, "input_schema", "inputSchema") or {}
        props = tuple((schema.get("properties") or {}).keys())
        required = tuple(schema.get("required") or ())
        description = " ".join((tool.description or tool.name).split())
        tools.append(McpTool(tool.name, description, props, required))
    return tools


def arguments(tool: McpTool, text: str) -> dict[str, Any]:
    """The plan's one input string as the tool's arguments."""
    if len(tool.params) == 1:
        return {tool.params[0]: text}
    if not tool.params:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    if len(tool.required) == 1:
        return {tool.required[0]: text}
    raise McpError(f"{tool.name} takes {', '.join(tool.params)}: its input should be a JSON object")


def call_tool(argv: Sequence[str], timeout_s: float, tool: McpTool, text: str) -> str:
    args = arguments(tool, text)

    async def work(client: Any) -> Any:
        return await client.call_tool(tool.name, arguments=args)

    result = _run(argv, timeout_s, work)
    parts = []
    for item in result.content:
        piece = getattr(item, "text", None)
        parts.append(piece if isinstance(piece, str) else f"[{getattr(item, 'type', 'content')}]")
    text_out = "\n".join(parts)
    if _field(result, "is_error", "isError"):
        raise McpError(f"{tool.name}: {' '.join(text_out.split())[:300] or 'failed'}")
    return text_out
