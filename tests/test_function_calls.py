"""`ask --functions F.yaml` with `command:`: the model's choice runs (argv, params as JSON on
stdin, `{param}` as one argv element), end to end on a script model whose reply is the call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import run_cli
from tests.rec_tool import __file__ as REC
from tests.script_model import write_script_model

NASTY = "; rm -rf ~ $(touch pwned) `id` \"q\" 'q'"


def _setup(tmp_path: Path, function: str = "count") -> tuple[Path, Path]:
    reply = json.dumps({"function": function, "params": {"word": NASTY, "times": 2}})
    model = write_script_model(tmp_path / "call.gguf", [reply])
    functions = tmp_path / "functions.yaml"
    functions.write_text(
        "count:\n"
        "  description: Counts a word.\n"
        "  params: {word: the word, times: how often}\n"
        f"  command: [{sys.executable!r}, {REC!r}, 'w={{word}}', '{{times}}', '{{missing}}']\n"
        "fail:\n"
        "  description: Fails.\n"
        "  params: {word: any}\n"
        f"  command: [{sys.executable!r}, {REC!r}, fail]\n"
        "plain:\n"
        "  description: Has no command.\n"
        "  params: {word: any}\n"
    )
    return model, functions


def _ask(model: Path, functions: Path, rec: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli(
        "ask",
        str(model),
        "count python",
        "--functions",
        str(functions),
        "--threads",
        "1",
        *args,
        env={"REC_FILE": str(rec)},
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_the_chosen_function_runs_with_params_literal(tmp_path: Path) -> None:
    model, functions = _setup(tmp_path)
    rec = tmp_path / "rec.jsonl"
    code, out, err = _ask(model, functions, rec, "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["call"] == {"function": "count", "params": {"word": NASTY, "times": 2}}
    seen = json.loads(rec.read_text())
    assert seen["argv"] == [f"w={NASTY}", "2", "{missing}"]
    assert json.loads(seen["stdin"]) == {"word": NASTY, "times": 2}
    assert result["run"]["command"][2:] == seen["argv"]
    assert result["run"]["output"].startswith("got 3 argument(s)")
    assert result["run"]["error"] is None
    assert not (tmp_path / "pwned").exists()
    # Plain output: the call, then what the command printed.
    code, out, err = _ask(model, functions, rec, "--yes")
    assert code == 0, err
    assert '"function": "count"' in out and "got 3 argument(s)" in out


def test_the_command_is_never_shown_to_the_model(tmp_path: Path) -> None:
    model, functions = _setup(tmp_path)
    proc = run_cli("ask", str(model), "count", "--functions", str(functions), "--print-prompt")
    assert proc.returncode == 0, proc.stderr
    assert "command:" not in proc.stdout and REC not in proc.stdout
    assert "Counts a word." in proc.stdout


def test_without_yes_or_a_terminal_the_call_is_refused(tmp_path: Path) -> None:
    model, functions = _setup(tmp_path)
    rec = tmp_path / "rec.jsonl"
    code, _, err = _ask(model, functions, rec)
    assert code == 2
    assert "give --yes" in err and not rec.exists()


def test_a_failing_command_is_exit_1_with_its_error(tmp_path: Path) -> None:
    model, functions = _setup(tmp_path, "fail")
    rec = tmp_path / "rec.jsonl"
    code, out, err = _ask(model, functions, rec, "--yes", "--json")
    assert code == 1
    assert (
        json.loads(out)["run"]["error"] == f"{sys.executable} exited with status 3: it went wrong"
    )
    assert "fail: " in err and "status 3" in err


def test_a_function_without_a_command_prints_the_choice_only(tmp_path: Path) -> None:
    model, functions = _setup(tmp_path, "plain")
    rec = tmp_path / "rec.jsonl"
    code, out, err = _ask(model, functions, rec, "--json")
    assert code == 0, err
    assert "run" not in json.loads(out) and not rec.exists()
