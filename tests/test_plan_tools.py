"""The tools a plan calls, on real parts: user commands as real processes (argv, never a
shell), the scraper and search against a loopback web server, the SSRF guard."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from airochat.adapters import command_tool, web_tools
from airochat.domain.tools_file import CommandSpec, ToolsFile, load_tools_file
from airochat.errors import InputFileError
from airochat.services.plan_tools import scraper_tool, search_tool, user_command_tool
from airochat.services.plans import Call, ToolError, knowledge_prompt
from tests.plan_server import plan_server

REC = str(Path(__file__).with_name("rec_tool.py"))
NASTY = """; rm -rf ~ && echo $(id) `whoami` "double" 'single' $HOME \\ | > out.txt * {input}"""


def _call(text: str) -> Call:
    return Call(text, text, {})


def test_model_written_input_reaches_the_command_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = tmp_path / "rec.jsonl"
    monkeypatch.setenv("REC_FILE", str(rec))
    monkeypatch.chdir(tmp_path)
    tool = user_command_tool(
        CommandSpec("Echo", "echo", (sys.executable, REC, "{input}", "x={input}!"))
    )
    out = tool.run(_call(NASTY))
    seen = json.loads(rec.read_text())
    assert seen["argv"] == [NASTY, f"x={NASTY}!"]  # one argv element each, as written
    assert seen["stdin"] == NASTY
    assert "got 2 argument(s)" in out
    assert not (tmp_path / "out.txt").exists()  # no shell ever saw it
    assert tool.reaches == "command"
    assert tool.shows is not None and tool.shows(_call("a b")).endswith("'a b' 'x=a b!'")


def test_a_failing_command_is_an_error_with_its_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REC_FILE", str(tmp_path / "rec.jsonl"))
    tool = user_command_tool(CommandSpec("Echo", "echo", (sys.executable, REC, "fail")))
    with pytest.raises(ToolError, match="exited with status 3: it went wrong"):
        tool.run(_call("x"))
    missing = user_command_tool(CommandSpec("Nope", "n", ("/no/such/program", "{input}")))
    with pytest.raises(ToolError, match="cannot run /no/such/program"):
        missing.run(_call("x"))


def test_a_hanging_command_is_stopped_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REC_FILE", str(tmp_path / "rec.jsonl"))
    tool = user_command_tool(CommandSpec("Slow", "s", (sys.executable, REC, "hang"), timeout_s=1))
    start = time.monotonic()
    with pytest.raises(ToolError, match="ran past its 1 s timeout"):
        tool.run(_call("x"))
    assert time.monotonic() - start < 10


def test_a_flood_of_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REC_FILE", str(tmp_path / "rec.jsonl"))
    start = time.monotonic()
    out = command_tool.run_command([sys.executable, REC, "flood"], "", timeout_s=30)
    assert out.truncated and len(out.text) == command_tool.MAX_OUTPUT_BYTES
    assert time.monotonic() - start < 20
    text = user_command_tool(CommandSpec("F", "f", (sys.executable, REC, "flood"))).run(_call(""))
    assert text.endswith("[output cut at 1 MiB]")


def test_the_scraper_reads_real_html_from_an_allowed_loopback_server() -> None:
    with plan_server() as server:
        base = f"http://127.0.0.1:{server.server_port}"
        page = web_tools.fetch_page(f"{base}/hop/17", allow_private=True)  # 4 redirects
        assert page.url == f"{base}/laureate"
        assert "Louise Glück won the\nNobel Prize in Literature\nin 2020" in page.text
        assert "The Wild Iris" in page.text
        assert "tracking" not in page.text and "color: red" not in page.text
        assert "<" not in page.text
        text = scraper_tool(True).run(_call(f"see {base}/laureate and {base}/image."))
    assert "The Wild Iris" in text
    assert "image/png is not text or HTML" in text


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/hop/0", "more than 5 redirects"),
        ("/image", "image/png is not text or HTML"),
        ("/missing", "HTTP 404"),
    ],
)
def test_pages_that_are_refused(path: str, said: str) -> None:
    with plan_server() as server, pytest.raises(web_tools.WebError, match=said):
        web_tools.fetch_page(f"http://127.0.0.1:{server.server_port}{path}", allow_private=True)


def test_a_page_past_2_mib_is_cut() -> None:
    with plan_server() as server:
        page = web_tools.fetch_page(f"http://127.0.0.1:{server.server_port}/big", True)
    assert page.cut and len(page.text) <= web_tools.MAX_PAGE_BYTES


def test_a_page_that_hangs_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_tools, "PAGE_TIMEOUT_S", 1.0)
    with plan_server() as server:
        start = time.monotonic()
        with pytest.raises(web_tools.WebError, match="no answer within 1 s"):
            web_tools.fetch_page(f"http://127.0.0.1:{server.server_port}/hang", True)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/laureate",
        "http://localhost:{port}/laureate",
        "http://[::1]:{port}/laureate",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://0.0.0.0:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_private_addresses_are_refused_by_default(url: str) -> None:
    with plan_server() as server:
        with pytest.raises(web_tools.WebError, match="refused"):
            web_tools.fetch_page(url.format(port=server.server_port), allow_private=False)
        assert server.seen == []  # nothing reached it


def test_other_schemes_and_ranges() -> None:
    with pytest.raises(web_tools.WebError, match="only http and https"):
        web_tools.fetch_page("file:///etc/passwd", allow_private=False)
    assert web_tools._refused("8.8.8.8") == ""
    assert web_tools._refused("100.64.1.1") == "shared (carrier-grade NAT)"
    assert web_tools._refused("fd00:ec2::254") == "private"


def test_searxng_search_gives_title_url_snippet_lines() -> None:
    with plan_server() as server:
        base = f"http://127.0.0.1:{server.server_port}"
        tool = search_tool(ToolsFile(search_url=f"{base}/search", search="searxng"))
        text = tool.run(_call("Nobel 2020"))
    first = text.split("\n\n")[0].splitlines()
    assert first == ["Louise Glück – Facts", f"{base}/laureate", "Found for Nobel 2020"]
    assert tool.reaches == "network"


def test_links_are_extracted_in_order_once() -> None:
    text = "a https://x.org/a, then (http://y.org/b) and https://x.org/a. ftp://no"
    assert web_tools.extract_links(text) == ["https://x.org/a", "http://y.org/b"]


def test_knowledge_model_gets_long_evidence_as_begininput_blocks() -> None:
    long = "Louise Glück won.\nHer most famous work is The Wild Iris."
    call = Call(
        "What is the famous work of :evidence1:, given :evidence4:?",
        "",
        {1: "Louise Glück", 4: long},
    )
    assert knowledge_prompt(call) == (
        "BEGININPUT\nBEGINCONTEXT\nevidence: :evidence4:\nENDCONTEXT\n"
        f"{long}\nENDINPUT\nBEGININSTRUCTION\n"
        "What is the famous work of Louise Glück, given :evidence4:?\nENDINSTRUCTION"
    )


def test_tools_file_errors_are_one_line(tmp_path: Path) -> None:
    f = tmp_path / "tools.yaml"
    cases = {
        "tools: [{name: Echo, command: [echo]}]": "needs a description",
        "tools: [{name: Echo, description: d}]": "exactly one of command: or mcp:",
        "tools: [{name: 'a b', description: d, command: [x]}]": "not a usable tool name",
        "tools: [{name: duckduckgo, description: d, command: [x]}]": "two tools are named",
        "search: bing": "search should be ddgs or searxng",
        "colour: red": "unknown key(s) colour",
        "tools: [{name: E, description: d, command: 'echo hi'}]": "non-empty list of strings",
        "rename: {Google: G}": "not a built-in tool",
    }
    for text, said in cases.items():
        f.write_text(text)
        with pytest.raises(InputFileError, match=None) as info:
            load_tools_file(f)
        assert said in str(info.value), text
    f.write_text(
        "search_url: http://127.0.0.1:1/search\nrename: {DuckDuckGo: WebSearch}\n"
        "tools:\n  - {name: Echo, description: says it, command: [echo, '{input}'], timeout: 2}\n"
    )
    spec = load_tools_file(f)
    assert spec.search == "searxng" and spec.rename == {"DuckDuckGo": "WebSearch"}
    assert spec.commands[0] == CommandSpec("Echo", "says it", ("echo", "{input}"), 2.0)


MCP_SERVER = str(Path(__file__).with_name("mcp_notes_server.py"))


def test_mcp_server_tools_are_listed_and_called_over_stdio() -> None:
    pytest.importorskip("mcp")
    from airochat.domain.tools_file import McpSpec
    from airochat.services.plan_tools import mcp_server_tools

    tools = {
        t.name: t for t in mcp_server_tools(McpSpec("Notes", (sys.executable, MCP_SERVER), 30))
    }
    assert set(tools) == {"read_note", "broken"}
    assert tools["read_note"].description == "Reads the note with this name."
    assert tools["read_note"].reaches == "mcp"
    assert "The Wild Iris" in tools["read_note"].run(_call("nobel"))
    with pytest.raises(ToolError, match="broken: "):  # the server says it failed
        tools["broken"].run(_call("x"))
    with pytest.raises(ToolError, match=r"Notes: .*MCP server /no/such"):
        mcp_server_tools(McpSpec("Notes", ("/no/such/server",), 10))
