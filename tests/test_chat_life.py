"""A chat's life on disk and its signals, through the real console script: a reply cut by a
signal in `ask --functions` is kept and never parsed; `/save FILE` keeps the model's cache as
FILE.kv; no lock file is left beside a session; `ask --server URL "question"`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pexpect
import pytest

from tests.conftest import popen_cli, run_cli
from tests.screen import Screen
from tests.test_servers import GREEDY, REPLY, Served, script_gguf, tools

__all__ = ["script_gguf", "tools"]  # the server tests' fixtures, used here too

BASE = ("--temperature", "0", "--system", "S.", "--threads", "1", "--no-input-history")
FUNCTIONS = "pick:\n  description: pick one thing\n  params:\n    what: the thing\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_mid_reply_in_ask_functions_ends_without_parsing(
    looping_gguf: Path, tmp_path: Path, sig: int, code: int
) -> None:
    """The bug: the reply's generator was left at Done, so its signal handlers (and the
    re-raise of SIGTERM) never ran again, and the cut reply was parsed as a choice."""
    fns, session = tmp_path / "f.yaml", tmp_path / "s.json"
    fns.write_text(FUNCTIONS)
    proc = popen_cli(
        "ask", str(looping_gguf), "go", "--functions", str(fns), "--session", str(session),
        "--max-tokens", "100000", *BASE[:-1],
    )  # fmt: skip
    # Nothing is printed before the choice: wait by the process's own CPU time. Start-up
    # takes ~0.5 s of it; the reply (to the 4096-token context) ~4 s more.
    while cpu_seconds(proc.pid) < 2.0:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err.decode()
    assert out == b"" and b"not a function call" not in err and b"Traceback" not in err
    turn = json.loads(session.read_text())["turns"][0]  # cut mid-reply, and kept
    assert turn["finish_reason"] == "interrupted" and turn["reply"].startswith("line 0 of")


def test_save_keeps_the_model_cache_beside_the_file(tiny_gguf: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "3")  # no --session
    try:
        s.child.expect_exact(">>>")
        s.child.send("hello world\r")
        s.child.expect("tok/s")
        s.child.expect_exact(">>>")
        s.child.send(f"/save {saved}\r")
        s.child.expect("Saved 1 exchange")
        s.child.expect_exact(">>>")
    finally:
        s.close()
    assert saved.with_name("saved.json.kv").exists()
    proc = run_cli(
        "ask", str(tiny_gguf), "again", "--session", str(saved), "--json", "--max-tokens", "2",
        *BASE[:-1],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "loaded the model's cache" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["prompt_eval_tokens"] < out["prompt_tokens"] // 2  # only the new turn is read


def test_no_lock_file_is_left_after_a_normal_exit(tiny_gguf: Path, tmp_path: Path) -> None:
    session = tmp_path / "s.json"
    lock = tmp_path / ".s.json.lock"
    proc = run_cli("ask", str(tiny_gguf), "hi", "--session", str(session), "--max-tokens", "2")
    assert proc.returncode == 0, proc.stderr
    assert session.exists() and not lock.exists()
    s = Screen(str(tiny_gguf), *BASE, "--max-tokens", "2", "--session", str(session))
    try:
        s.child.expect_exact(">>>")
        assert lock.exists()  # held while the chat is open
        s.child.sendcontrol("d")
        s.child.expect(pexpect.EOF)
    finally:
        s.close()
    assert s.child.exitstatus == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.kv"]


def test_ask_with_a_server_takes_one_argument_as_the_message(
    tools: Path, script_gguf: Path
) -> None:
    server = Served(tools, script_gguf)
    try:
        proc = run_cli("ask", "--server", server.url, "Where?", *GREEDY)
        piped = run_cli("ask", "--server", server.url, *GREEDY, stdin="Where?")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == REPLY
    assert piped.returncode == 0 and piped.stdout.strip() == REPLY, piped.stderr
