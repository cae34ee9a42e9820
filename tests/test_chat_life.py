"""A chat's life on disk and its signals. Through the real console script: a reply cut by a
signal in `ask --functions` is kept and never parsed; `/save FILE` keeps the model's cache as
FILE.kv; no lock file is left beside a session; `ask --server URL "question"`; the shared
options alike in run, ask and bench. In-process, on real models: the cancel token that carries
a signal to the engine, the scene-change signal, the session lock's hand-over."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from airochat.adapters.session_lock import SessionLock, SessionLockedError
from airochat.domain.config import Sampling
from airochat.domain.events import Done, TextChunk
from airochat.domain.templates import get_template
from airochat.errors import Terminated
from airochat.services import session_file
from airochat.services.chat import Chat
from airochat.services.kept_chat import KeptChat
from airochat.services.repl import Repl
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
        "--max-tokens", "100000", "--speculate", "off", *BASE[:-1],
    )  # fmt: skip
    # Nothing is printed before the choice: wait by the process's own CPU time. Start-up
    # takes ~0.5 s of it; the reply (to the 4096-token context) ~4 s more -- decoded plainly:
    # auto drafts this looping model's reply to its end in under 2 s on a fast CPU.
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
        dash = run_cli("ask", "-", "--server", server.url, *GREEDY, stdin="Where?")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == REPLY
    assert piped.returncode == 0 and piped.stdout.strip() == REPLY, piped.stderr
    # MODEL `-` still says "the server's model", the message then from stdin
    assert dash.returncode == 0 and dash.stdout.strip() == REPLY, dash.stderr


# -- the cancel token: how a signal (or anything else) reaches the engine ----------------------


@pytest.fixture(scope="module")
def looping_chat(looping_gguf: Path) -> Iterator[Chat]:
    from airochat.adapters.llama_engine import LlamaEngine, LoadOptions

    engine = LlamaEngine.load(LoadOptions(path=looping_gguf, n_ctx=2048, n_threads=1))
    sampling = Sampling(temperature=0.0, max_tokens=1000)
    yield Chat(engine, get_template("airoboros"), "S.", sampling)
    engine.close()


def test_a_cancel_token_stops_a_reply_and_the_turn_is_kept(looping_chat: Chat) -> None:
    """The chat arms its token with the engine's stop while a reply runs: cancelling it ends
    the reply as `interrupted` (the turn stays, as after Ctrl-C), and nothing else."""
    chat = looping_chat
    chat.reset()
    assert not chat.cancel.cancel()  # no reply running: the caller acts itself
    events: list[object] = []
    for event in chat.send("go"):
        events.append(event)
        if isinstance(event, TextChunk) and len(events) == 1:
            assert chat.cancel.armed and chat.cancel.cancel()
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "interrupted"
    assert done.generated < 100 and done.text.startswith("line 0 of a reply")
    assert not chat.cancel.armed
    turn = chat.conversation.turns[-1]
    assert turn.finish_reason == "interrupted" and turn.reply == done.text
    again = list(chat.send("more"))[-1]  # the stop does not outlive its reply
    assert isinstance(again, Done) and again.finish_reason == "length"


def test_an_ending_cancel_keeps_the_turn_and_raises_before_done(looping_chat: Chat) -> None:
    """SIGTERM's path (`cancel(ending=15)`): the turn is kept, then `Terminated` is raised
    before `Done` is handed on, so a caller that reads up to `Done` (ask --functions) never
    sees the cut reply as an answer."""
    chat = looping_chat
    chat.reset()
    seen = []
    with pytest.raises(Terminated) as raised:
        for event in chat.send("go"):
            seen.append(type(event).__name__)
            if isinstance(event, TextChunk) and chat.cancel.armed:
                chat.cancel.cancel(ending=15)
    assert raised.value.exit_code == 143 and "Done" not in seen
    assert chat.conversation.turns[-1].finish_reason == "interrupted"
    assert not chat.cancel.armed


# -- the scene-change signal -------------------------------------------------------------------


def test_a_load_that_brings_or_takes_a_scene_brings_its_commands(tmp_path: Path) -> None:
    """`Chat.restore` says when the scene changes (`on_scene_change`); the REPL then takes
    the command set of the chat in force: /scene works after loading a scene, not after."""
    from tests.test_commands import SCENE, ListIO, make_chat

    scene_file, plain_file = tmp_path / "scene.json", tmp_path / "plain.json"
    session_file.save(make_chat(scene=SCENE), scene_file)
    session_file.save(make_chat(), plain_file)
    io = ListIO(["/scene", f"/load {scene_file}", "/scene", f"/load {plain_file}", "/scene"])
    repl = Repl(KeptChat(make_chat()), io)
    changes: list[bool] = []
    repl.chat.on_scene_change(lambda: changes.append(repl.chat.scene is not None))
    repl.run()
    assert changes == [True, False]
    assert [e.split(" (")[0] for e in io.errors] == ["unknown command /scene"] * 2
    assert any(line.startswith("Market (single)") for line in io.out)


# -- the session lock --------------------------------------------------------------------------


def test_a_waiter_that_wins_a_removed_lock_file_locks_the_new_one(tmp_path: Path) -> None:
    """The holder removes `.FILE.lock` as it lets go. A waiter already blocked on the old
    file then wins a lock nobody else can see; it must lock the file at the path instead,
    or a third process would take the chat too."""
    session = tmp_path / "s.json"
    first = SessionLock(session)
    first.acquire()
    waiter = SessionLock(session)
    result: list[BaseException | None] = []

    def wait_for_it() -> None:
        try:
            waiter.acquire(wait_s=20)
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    while open_count(first.path) < 2:  # the waiter has the old file open, and waits
        time.sleep(0.01)
    first.release()
    thread.join(timeout=20)
    assert result == [None]
    assert first.path.exists() and first.path.read_text() == str(os.getpid())
    with pytest.raises(SessionLockedError, match=f"pid {os.getpid()}"):
        SessionLock(session).acquire()
    waiter.release()
    assert not first.path.exists()


def open_count(path: Path) -> int:
    """How many descriptors of this process name `path` (a lock file open and waiting)."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if _target(fd) == str(path))


def _target(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:
        return ""


# -- one declaration of the shared options ----------------------------------------------------


def panels(help_text: str) -> dict[str, str]:
    """The help's boxed panels by title, their lines as shown."""
    out: dict[str, str] = {}
    title = None
    for line in help_text.splitlines():
        if line.startswith("╭─ "):
            title = line[3:].split(" ─", 1)[0]
            out[title] = ""
        elif line.startswith("╰"):
            title = None
        elif title is not None:
            out[title] += line.rstrip() + "\n"
    return out


def test_run_ask_and_bench_show_the_shared_options_alike() -> None:
    """The options run, ask and bench share are declared once (cli/options.py): each command
    shows every one of them, in the same panel, in the same words."""
    from dataclasses import fields

    from airochat.cli.options import LoadingOptions, SamplingOptions, WhereOptions

    wide = {"COLUMNS": "200"}
    helps = {c: panels(run_cli(c, "--help", env=wide).stdout) for c in ("run", "ask", "bench")}
    for group in (SamplingOptions, LoadingOptions, WhereOptions):
        shown = {c: p[group.PANEL] for c, p in helps.items()}
        assert shown["run"] == shown["ask"] == shown["bench"], group.PANEL
        for f in fields(group):
            assert f"--{f.name.replace('_', '-')} " in shown["run"], f.name
