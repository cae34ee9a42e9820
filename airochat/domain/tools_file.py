"""tools.yaml: the tools a reWOO plan may call, beside the built-ins.

```yaml
search_url: http://127.0.0.1:8888/search   # a SearXNG JSON API; or `search: ddgs`
allow_private_hosts: false                 # TextScraper may fetch loopback/private addresses
rename: {DuckDuckGo: WebSearch}            # a built-in under another name
tools:
  - name: Echo
    description: what the model is told this tool does
    command: [python3, rec.py, "{input}"]   # never a shell; {input} is one argv element
    timeout: 60                            # seconds (default 60)
  - name: Files
    mcp: [python3, files_server.py]        # an MCP server over stdio: its tools are listed
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airochat.domain.rewoo import CARD_TOOLS
from airochat.domain.yaml_text import read_yaml_file
from airochat.errors import InputFileError

DEFAULT_TIMEOUT_S = 60.0
NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_KEYS = {"search_url", "search", "allow_private_hosts", "rename", "tools"}


@dataclass(frozen=True)
class CommandSpec:
    name: str
    description: str
    argv: tuple[str, ...]
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class McpSpec:
    name: str  # the entry's name: says which server a tool came from
    argv: tuple[str, ...]
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class ToolsFile:
    search_url: str | None = None
    search: str | None = None  # "searxng" (with search_url) or "ddgs"
    allow_private_hosts: bool = False
    rename: dict[str, str] = field(default_factory=dict)  # built-in name -> shown name
    commands: tuple[CommandSpec, ...] = ()
    mcp: tuple[McpSpec, ...] = ()


def load_tools_file(path: Path) -> ToolsFile:
    data = read_yaml_file(path, "tools file")
    if data is None:
        return ToolsFile()
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a mapping (search_url, tools, ...)")
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        raise InputFileError(f"{path}: unknown key(s) {', '.join(unknown)}")
    search_url = _opt_str(data, "search_url", path)
    search = _opt_str(data, "search", path)
    if search not in (None, "ddgs", "searxng"):
        raise InputFileError(f"{path}: search should be ddgs or searxng, not {search!r}")
    if search == "searxng" and not search_url:
        raise InputFileError(f"{path}: search: searxng needs search_url")
    if search_url and not re.match(r"^https?://", search_url):
        raise InputFileError(f"{path}: search_url should be an http(s) URL")
    private = data.get("allow_private_hosts", False)
    if not isinstance(private, bool):
        raise InputFileError(f"{path}: allow_private_hosts should be true or false")
    rename = _rename(data.get("rename") or {}, path)
    commands, servers = _tools(data.get("tools") or [], path)
    names = [rename.get(n, n) for n in CARD_TOOLS] + [c.name for c in commands]
    _no_duplicates(names, path)
    return ToolsFile(
        search_url=search_url,
        search=search or ("searxng" if search_url else None),
        allow_private_hosts=private,
        rename=rename,
        commands=tuple(commands),
        mcp=tuple(servers),
    )


def _opt_str(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InputFileError(f"{path}: {key} should be a string")
    return value


def _rename(data: Any, path: Path) -> dict[str, str]:
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: rename should map a built-in's name to another name")
    out: dict[str, str] = {}
    for old, new in data.items():
        if old not in CARD_TOOLS:
            raise InputFileError(f"{path}: rename: {old!r} is not a built-in tool")
        if not isinstance(new, str) or not NAME.match(new):
            raise InputFileError(f"{path}: rename: {new!r} is not a usable tool name")
        out[old] = new
    return out


def _argv(value: Any, where: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, str | int | float) and not isinstance(a, bool) for a in value)
    ):
        raise InputFileError(f"{where} should be a non-empty list of strings (the argv)")
    return tuple(str(a) for a in value)


def _timeout(item: dict[str, Any], where: str) -> float:
    value = item.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InputFileError(f"{where}: timeout should be a positive number of seconds")
    return float(value)


def _tools(items: Any, path: Path) -> tuple[list[CommandSpec], list[McpSpec]]:
    if not isinstance(items, list):
        raise InputFileError(f"{path}: tools should be a list")
    commands: list[CommandSpec] = []
    servers: list[McpSpec] = []
    for i, item in enumerate(items, start=1):
        where = f"{path}: tool {i}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputFileError(f"{where} should be a mapping with a name")
        name = item["name"]
        if not NAME.match(name):
            raise InputFileError(f"{where}: {name!r} is not a usable tool name (letters, digits)")
        if ("command" in item) == ("mcp" in item):
            raise InputFileError(f"{where} ({name}) needs exactly one of command: or mcp:")
        if "mcp" in item:
            argv = _argv(item["mcp"], f"{where}: mcp")
            servers.append(McpSpec(name, argv, _timeout(item, where)))
            continue
        description = item.get("description")
        if not isinstance(description, str) or not description.strip():
            raise InputFileError(f"{where} ({name}) needs a description for the model")
        argv = _argv(item["command"], f"{where}: command")
        commands.append(CommandSpec(name, description.strip(), argv, _timeout(item, where)))
    return commands, servers


def _no_duplicates(names: list[str], path: Path) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise InputFileError(f"{path}: two tools are named {name!r}")
        seen.add(name.lower())
