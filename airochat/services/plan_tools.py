"""The plan's tools: the card's built-ins, the user's commands, an MCP server's tools. Each
is a `Tool` whose failures are `ToolError`s."""

from __future__ import annotations

import shlex

from airochat.adapters import command_tool, mcp_tools, web_tools
from airochat.domain.rewoo import CARD_TOOLS
from airochat.domain.tools_file import NAME, CommandSpec, McpSpec, ToolsFile
from airochat.services.plans import Ask, Call, Tool, ToolError, knowledge_tool


def build_tools(spec: ToolsFile, ask_model: Ask) -> dict[str, Tool]:
    """The card's built-ins (renamed where the file says), then the file's own tools."""
    builtins = {
        "DuckDuckGo": search_tool(spec),
        "TextScraper": scraper_tool(spec.allow_private_hosts),
        "HyperlinkExtractor": links_tool(),
        "KnowledgeModel": knowledge_tool(ask_model),
    }
    tools: dict[str, Tool] = {}
    for card_name in CARD_TOOLS:
        name = spec.rename.get(card_name, card_name)
        tool = builtins[card_name]
        tools[name] = Tool(name, tool.description, tool.run, tool.reaches, tool.shows)
    for command in spec.commands:
        tools[command.name] = user_command_tool(command)
    for server in spec.mcp:
        for tool in mcp_server_tools(server):
            if tool.name.lower() in {t.lower() for t in tools}:
                raise ToolError(f"MCP server {server.name}: a tool {tool.name} exists already")
            tools[tool.name] = tool
    return tools


def mcp_server_tools(server: McpSpec) -> list[Tool]:
    """The server's tools, listed once (the server started and stopped for it)."""
    try:
        listed = mcp_tools.list_tools(server.argv, server.timeout_s)
    except mcp_tools.McpError as exc:
        raise ToolError(f"{server.name}: {exc}") from None
    return [_mcp_tool(server, t) for t in listed if NAME.match(t.name)]


def _mcp_tool(server: McpSpec, tool: mcp_tools.McpTool) -> Tool:
    def run(call: Call) -> str:
        try:
            return mcp_tools.call_tool(server.argv, server.timeout_s, tool, call.text)
        except mcp_tools.McpError as exc:
            raise ToolError(str(exc)) from None

    def shows(call: Call) -> str:
        return f"call {tool.name} on the MCP server {server.name} ({shlex.join(server.argv)})"

    return Tool(tool.name, tool.description, run, "mcp", shows)


def search_tool(spec: ToolsFile) -> Tool:
    where = spec.search_url if spec.search == "searxng" else "ddgs (DuckDuckGo and others)"

    def run(call: Call) -> str:
        query = call.text.strip()
        if not query:
            raise ToolError("an empty search")
        try:
            if spec.search == "searxng" and spec.search_url:
                return web_tools.search_searxng(spec.search_url, query)
            return web_tools.search_ddgs(query)
        except web_tools.WebError as exc:
            raise ToolError(str(exc)) from None

    return Tool(
        "DuckDuckGo",
        CARD_TOOLS["DuckDuckGo"],
        run,
        "network",
        lambda call: f"search {where} for {call.text.strip()!r}",
    )


def scraper_tool(allow_private: bool) -> Tool:
    def run(call: Call) -> str:
        links = _links(call.text)
        if not links:
            raise ToolError("no http(s) link in the input")
        pages: list[str] = []
        errors: list[str] = []
        for link in links:
            try:
                page = web_tools.fetch_page(link, allow_private)
            except web_tools.MissingPackage as exc:
                raise ToolError(str(exc)) from None
            except web_tools.WebError as exc:
                errors.append(str(exc))
                pages.append(f"{link}\n(not read: {exc})")
                continue
            cut = "\n[page cut at 2 MiB]" if page.cut else ""
            pages.append(f"{page.url}\n{page.text}{cut}")
        if len(errors) == len(links):
            raise ToolError("; ".join(errors))
        return "\n\n".join(pages)

    return Tool(
        "TextScraper",
        CARD_TOOLS["TextScraper"],
        run,
        "network",
        lambda call: "fetch " + ", ".join(_links(call.text)[:10]),
    )


def _links(text: str) -> list[str]:
    return web_tools.extract_links(text)[:20]


def links_tool() -> Tool:
    def run(call: Call) -> str:
        return "\n".join(web_tools.extract_links(call.text))

    return Tool("HyperlinkExtractor", CARD_TOOLS["HyperlinkExtractor"], run)


def user_command_tool(spec: CommandSpec) -> Tool:
    def argv(call: Call) -> list[str]:
        return command_tool_argv(spec, call.text)

    def run(call: Call) -> str:
        try:
            out = command_tool.run_command(argv(call), call.text, spec.timeout_s)
        except command_tool.CommandFailed as exc:
            raise ToolError(str(exc)) from None
        cap = command_tool.MAX_OUTPUT_BYTES >> 20
        cut = f"\n[output cut at {cap} MiB]" if out.truncated else ""
        return out.text.rstrip("\n") + cut

    return Tool(spec.name, spec.description, run, "command", lambda c: "run " + shlex.join(argv(c)))


def command_tool_argv(spec: CommandSpec, text: str) -> list[str]:
    return command_tool.fill_argv(spec.argv, {"input": text})
