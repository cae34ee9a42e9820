"""A small MCP server over stdio, written with the official SDK, for plan tests: notes to
read, and a tool that fails."""

from __future__ import annotations

try:
    from mcp.server.mcpserver import MCPServer
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[no-redef]

NOTES = {"nobel": "Louise Glück, Nobel Prize in Literature 2020. Famous for The Wild Iris."}

server = MCPServer("notes")


@server.tool()
def read_note(name: str) -> str:
    """Reads the note with this name."""
    return NOTES.get(name.strip().lower(), f"no note named {name!r}")


@server.tool()
def broken(text: str) -> str:
    """Always fails."""
    raise ValueError("the notes are on fire")


if __name__ == "__main__":
    server.run()
