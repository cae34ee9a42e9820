"""`airochat ask MODEL --plan ... --tools tools.yaml` end to end: a real GGUF (a script model
whose greedy reply is the plan) plans, the real console script runs the steps against a
loopback web server (pages and a SearXNG-shaped search API) and a user tool that records its
argv."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests import lying_server as lies
from tests.conftest import popen_cli, run_cli
from tests.lying_server import LyingServer
from tests.plan_server import plan_server
from tests.rec_tool import __file__ as REC
from tests.script_model import write_script_model

NASTY = """; rm -rf ~ $(touch pwned) `touch pwned2` "double" 'single'"""


def _model(tmp_path: Path, plan: str) -> Path:
    pieces = [line + "\n" for line in plan.strip().splitlines()]
    return write_script_model(tmp_path / "plan.gguf", pieces)


def _tools(tmp_path: Path, port: int, private: bool = True, extra: str = "") -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(
        f"search_url: http://127.0.0.1:{port}/search\n"
        f"allow_private_hosts: {'true' if private else 'false'}\n"
        "tools:\n"
        "  - name: Echo\n"
        "    description: Records its input.\n"
        f"    command: [{sys.executable!r}, {REC!r}, '{{input}}']\n"
        "    timeout: 2\n" + extra
    )
    return path


def _ask(model: Path, tools: Path, rec: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli(
        "ask",
        str(model),
        "--plan",
        "Who won the Nobel Prize in Literature in 2020?",
        "--tools",
        str(tools),
        "--threads",
        "1",
        *args,
        env={"REC_FILE": str(rec)},
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _argv_of(rec: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in rec.read_text().splitlines()]


def test_a_plan_runs_every_tool_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rec = tmp_path / "rec.jsonl"
    with plan_server() as server:
        plan = f"""
Plan: Search the web for the laureate.
:evidence0: = DuckDuckGo[Nobel Prize in Literature 2020 winner]
Plan: Extract the links.
:evidence1: = HyperlinkExtractor[:evidence0:]
Plan: Read the pages.
:evidence2: = TextScraper[:evidence1:]
Plan: Record something awkward.
:evidence3: = Echo[{NASTY}]
Plan: Ask the model.
:evidence4: = KnowledgeModel[What is the most famous work, given :evidence2:?]
Answer: :evidence4:
"""
        model = _model(tmp_path, plan)
        code, out, err = _ask(model, _tools(tmp_path, server.server_port), rec, "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    steps = result["steps"]
    assert [s["tool"] for s in steps] == [
        "DuckDuckGo",
        "HyperlinkExtractor",
        "TextScraper",
        "Echo",
        "KnowledgeModel",
    ]
    assert all(s["error"] is None for s in steps), steps
    base = f"http://127.0.0.1:{server.server_port}"
    assert f"{base}/laureate" in steps[0]["evidence"]
    assert steps[1]["evidence"].splitlines() == [f"{base}/laureate", f"{base}/laureate?again"]
    assert steps[2]["input"] == steps[1]["evidence"]  # the evidence substituted
    assert "Her most famous work is\nThe Wild Iris" in steps[2]["evidence"]
    assert "/search?q=Nobel+Prize+in+Literature+2020+winner&format=json" in server.seen
    # The model-written input reached the tool as one literal argv element, and on stdin.
    assert json.loads(rec.read_text()) == {"argv": [NASTY], "stdin": NASTY}
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    # KnowledgeModel asked the loaded model (whose reply is, always, the script).
    assert steps[4]["evidence"] == plan.strip()
    assert result["answer"] == plan.strip()
    assert result["plan"][0] == "Search the web for the laureate."
    assert all(isinstance(s["seconds"], float) for s in steps)
    assert ":evidence2: = TextScraper[" in err and "characters in" in err


def test_without_a_terminal_or_yes_a_plan_that_reaches_out_is_refused(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    with plan_server() as server:
        model = _model(
            tmp_path,
            ":evidence0: = HyperlinkExtractor[x]\n:evidence1: = Echo[hi]\nAnswer: :evidence1:",
        )
        code, out, err = _ask(model, _tools(tmp_path, server.server_port), rec)
    assert code == 2, err
    assert "Echo (line 2)" in err and "give --yes" in err
    assert not rec.exists() and out == ""


def test_private_addresses_are_refused_by_default(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    with plan_server() as server:
        url = f"http://127.0.0.1:{server.server_port}/laureate"
        model = _model(tmp_path, f":evidence0: = TextScraper[{url}]\nAnswer: :evidence0:")
        tools = _tools(tmp_path, server.server_port, private=False)
        code, out, err = _ask(model, tools, rec, "--yes", "--json")
        assert server.seen == []
    assert code == 1
    step = json.loads(out)["steps"][0]
    assert "127.0.0.1 resolves to 127.0.0.1, a loopback address: refused" in step["error"]
    assert "1 of 1 step(s) failed" in err


@pytest.mark.parametrize(
    ("plan", "said"),
    [
        (":evidence0: = Echo[a]\nrm -rf ~\nAnswer: :evidence0:", "line 2: not a Plan:"),
        (":evidence0: = Shell[rm -rf ~]\nAnswer: :evidence0:", "line 1: unknown tool 'Shell'"),
        (
            ":evidence0: = Echo[:evidence1:]\n:evidence1: = Echo[b]\nAnswer: :evidence1:",
            "line 1: :evidence1: is used before a step produces it",
        ),
    ],
)
def test_a_bad_plan_runs_nothing(tmp_path: Path, plan: str, said: str) -> None:
    rec = tmp_path / "rec.jsonl"
    model = _model(tmp_path, plan)
    code, out, err = _ask(model, _tools(tmp_path, 9), rec, "--yes")
    assert code == 1
    assert said in err and "Traceback" not in err
    assert not rec.exists() and out == ""


def test_a_hanging_tool_times_out_and_a_flood_is_capped(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    extra = (
        "  - name: Flood\n    description: Prints a lot.\n"
        f"    command: [{sys.executable!r}, {REC!r}, flood]\n"
    )
    model = _model(
        tmp_path,
        ":evidence0: = Echo[hang]\n:evidence1: = Flood[go]\nAnswer: :evidence0: :evidence1:",
    )
    code, out, err = _ask(model, _tools(tmp_path, 9, extra=extra), rec, "--yes", "--json")
    assert code == 1
    hang, flood = json.loads(out)["steps"]
    assert "ran past its 2 s timeout" in hang["error"]
    assert hang["evidence"].startswith("(no evidence: ")
    assert flood["error"] is None and flood["truncated"] is True
    assert flood["chars"] > 1_000_000
    assert flood["evidence"].endswith(f"[evidence cut at 8000 of {flood['chars']} characters]")
    assert "1 of 2 step(s) failed: :evidence0: (Echo)" in err


def test_dry_run_shows_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    model = _model(tmp_path, "Plan: say it\n:evidence0: = Echo[hello]\nAnswer: :evidence0:")
    code, out, err = _ask(model, _tools(tmp_path, 9), rec, "--dry-run")
    assert code == 0, err
    assert out.splitlines() == ["Plan: say it", ":evidence0: = Echo[hello]", "Answer: :evidence0:"]
    assert "nothing was run" in err and not rec.exists()
    code, out, _ = _ask(model, _tools(tmp_path, 9), rec, "--dry-run", "--json")
    assert json.loads(out)["steps"] == [
        {"evidence_id": 0, "tool": "Echo", "input": "hello", "plan": "say it"}
    ]


def test_print_prompt_shows_the_cards_planning_prompt(tmp_path: Path) -> None:
    from tests.test_rewoo import CARD_PROMPT

    model = _model(tmp_path, ":evidence0: = Echo[a]\nAnswer: :evidence0:")
    proc = run_cli(
        "ask",
        str(model),
        "--plan",
        "Who won the Nobel Prize in Literature in 2020 and what is their most famous work?",
        "--print-prompt",
    )
    assert proc.returncode == 0, proc.stderr
    assert CARD_PROMPT in proc.stdout  # no tools file: the card's four tools, nothing else
    assert proc.stdout.rstrip().endswith("ASSISTANT:")


def test_max_steps_and_other_usage_errors(tmp_path: Path) -> None:
    model = _model(tmp_path, ":evidence0: = Echo[a]\n:evidence1: = Echo[b]\nAnswer: :evidence1:")
    rec = tmp_path / "rec.jsonl"
    code, _, err = _ask(model, _tools(tmp_path, 9), rec, "--yes", "--max-steps", "1")
    assert code == 1 and "more than 1 steps" in err and not rec.exists()
    code, _, err = _ask(model, _tools(tmp_path, 9), rec, "--max-steps", "0")
    assert code == 2 and "--max-steps" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools: 3")
    code, _, err = _ask(model, bad, rec)
    assert code == 1 and "tools should be a list" in err


def test_mcp_tools_from_the_tools_file_run_in_a_plan(tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    server = str(Path(__file__).with_name("mcp_notes_server.py"))
    extra = f"  - name: Notes\n    mcp: [{sys.executable!r}, {server!r}]\n"
    rec = tmp_path / "rec.jsonl"
    model = _model(
        tmp_path, "Plan: read the note\n:evidence0: = read_note[nobel]\nAnswer: :evidence0:"
    )
    proc = run_cli(
        "ask",
        str(model),
        "--plan",
        "q?",
        "--tools",
        str(_tools(tmp_path, 9, extra=extra)),
        "--print-prompt",
    )
    assert "read_note[input]: Reads the note with this name." in proc.stdout
    code, out, err = _ask(model, _tools(tmp_path, 9, extra=extra), rec, "--yes")
    assert code == 0, err
    assert out == "Louise Glück, Nobel Prize in Literature 2020. Famous for The Wild Iris.\n"


def test_a_piped_answer_keeps_the_tool_s_exact_bytes(tmp_path: Path) -> None:
    """Pipes are the user's data (as `ask` keeps a reply's bytes); the terminal case is
    tests/test_plan_consent.py."""
    rec = tmp_path / "rec.jsonl"
    plan = ":evidence0: = Echo[esc]\n:evidence1: = Echo[:evidence0:]\nAnswer: :evidence0:"
    code, out, err = _ask(_model(tmp_path, plan), _tools(tmp_path, 9), rec, "--yes")
    assert code == 0, err
    assert out == "\x1b]0;owned\x07\x1b[31mRED\x1b[0m \x9b2J \u202eevil\n"
    assert "\x1b" not in err and "\u202e" not in err  # the step lines on stderr
    assert "Echo[\\x1b]0;owned\\x07\\x1b[31mRED\\x1b[0m \\x9b2J <U+202E>evil]" in err


def test_a_step_s_input_is_one_line_however_long_its_evidence(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    plan = ":evidence0: = Echo[lines]\n:evidence1: = Echo[see :evidence0:]\nAnswer: :evidence1:"
    code, _out, err = _ask(_model(tmp_path, plan), _tools(tmp_path, 9), rec, "--yes")
    assert code == 0, err
    assert ":evidence1: = Echo[see first line ⏎ second line ⏎ third line]\n" in err
    assert _argv_of(rec)[1] == ["see first line\nsecond line\nthird line"]  # the tool got it whole


def test_a_planning_prompt_that_cannot_fit_is_refused_with_the_reason(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    model = _model(tmp_path, ":evidence0: = Echo[a]\nAnswer: :evidence0:")
    code, out, err = _ask(model, _tools(tmp_path, 9), rec, "--yes", "--ctx", "128")
    assert code == 1 and "the context holds 128" in err
    assert out == "" and not rec.exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_knowledgemodel_step_ends_as_that_signal(
    sig: signal.Signals, code: int
) -> None:
    """The plan comes back at once; the KnowledgeModel question then stalls on the server."""
    plan = "Plan: Ask.\n:evidence0: = KnowledgeModel[Who won?]\nAnswer: :evidence0:\n"
    answers = iter([lambda h: h.sse(lies.llama_events(plan))])

    def completion(h: lies.Handler) -> None:
        next(answers, lies.stall_after_headers)(h)

    props = {**lies.props(), "default_generation_settings": {"n_ctx": 4096}}
    with LyingServer({"/completion": completion, "/props": lies.answer(props)}) as server:
        proc = popen_cli(
            "ask", "m", "--plan", "Who won the Nobel Prize?", "--server", server.url,
            "--server-kind", "llama",
        )  # fmt: skip
        rc, took, err = lies.signal_in_stall(proc, server.seen, "/completion", 2, sig)
    assert server.seen.count("/completion") == 2, server.seen
    assert rc == code, err
    assert took < 1.0 and b"Traceback" not in err, (took, err)
