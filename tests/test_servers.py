"""Chatting through servers with the real llama.cpp llama-server and rpc-server, built once from
the llama.cpp sources inside the installed llama-cpp-python's sdist (tests/llama_tools.py).

The model is the script model (tests/script_model.py): its greedy reply is known text, so the
same chat through every engine can be compared word for word."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

from airochat.adapters.llama_server import LlamaServerEngine
from airochat.adapters.openai_server import OpenAIEngine
from airochat.adapters.server_http import ServerGone
from airochat.domain.config import Sampling
from airochat.domain.events import Done
from airochat.domain.templates import get_template
from airochat.services.chat import Chat
from tests import llama_tools
from tests.conftest import popen_cli, run_cli
from tests.screen import Screen
from tests.script_model import write_script_model

PIECES = ["The capital is ", "a city ", "of bridges ", "and towers.", "\n"]
REPLY = "The capital is a city of bridges and towers."
GREEDY = ("--temperature", "0", "--threads", "1", "--system", "S.")


@pytest.fixture(scope="session")
def tools() -> Path:
    return llama_tools.build()  # ~10 minutes on 2 cores the first time, then cached


@pytest.fixture(scope="session")
def script_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_script_model(tmp_path_factory.mktemp("srv") / "script.gguf", PIECES)


class Served:
    """A llama-server on a free port of 127.0.0.1, stopped at the end of the test."""

    def __init__(self, tools: Path, model: Path, *extra: str, port: int = 0) -> None:
        from airochat.adapters.server_process import free_port

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(tools / "llama-server"), "-m", str(model), "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "-c", "1024", "-np", "1", "-t", "1", "--no-webui"]
        self.proc = subprocess.Popen(
            [*argv, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("llama-server did not start")

    def busy(self) -> bool:
        return bool(httpx.get(f"{self.url}/slots", timeout=2).json()[0]["is_processing"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def served(tools: Path, script_gguf: Path) -> Iterator[Served]:
    server = Served(tools, script_gguf)
    yield server
    server.stop()


def chat_on(engine: object) -> Chat:
    return Chat(
        engine,  # type: ignore[arg-type]
        get_template("airoboros"),
        "S.",
        Sampling(temperature=0.0, max_tokens=32),
    )


# -- the same chat through every engine ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["llama", "openai"])
def test_ask_through_a_server_answers_as_locally(
    served: Served, script_gguf: Path, kind: str
) -> None:
    local = run_cli("ask", str(script_gguf), "Where?", *GREEDY)
    remote = run_cli(
        "ask", str(script_gguf), "Where?", *GREEDY[:2], "--system", "S.",
        "--server", served.url, "--server-kind", kind,
    )  # fmt: skip
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    assert local.stdout.strip() == remote.stdout.strip() == REPLY


@pytest.mark.parametrize("engine_class", [LlamaServerEngine, OpenAIEngine])
def test_a_later_turn_reads_only_its_new_tokens_on_the_server(
    served: Served, engine_class: type
) -> None:
    engine = (
        engine_class(served.url)
        if engine_class is LlamaServerEngine
        else OpenAIEngine(served.url, None)
    )
    chat = chat_on(engine)
    try:
        first = next(e for e in chat.send("Where?") if isinstance(e, Done))
        new_turn = len(engine.tokenize_text(" USER: And then? ASSISTANT: "))
        second = next(e for e in chat.send("And then?") if isinstance(e, Done))
    finally:
        engine.close()
    assert first.text.strip() == REPLY and second.text.strip() == REPLY
    assert second.prompt_tokens > first.prompt_tokens + new_turn
    # counted by the server: the new turn and the EOS that closed the last reply
    assert 0 < second.prompt_eval_tokens <= new_turn + 2, second


def test_the_repl_over_a_server_and_its_stats(served: Served, script_gguf: Path) -> None:
    s = Screen(str(script_gguf), *GREEDY, "--server", served.url, "--no-input-history")
    try:
        s.child.expect_exact(">>>")
        for message in ("Where?", "And then?"):
            s.child.send(message + "\r")
            s.child.expect(r"read (\d+) new prompt tokens")
            s.child.expect_exact(">>>")
        s.child.send("/stats\r")
        s.child.expect(r"(\d+) prompt tokens \((\d+) read new\)")
        total, read = int(s.child.match.group(1)), int(s.child.match.group(2))
        assert read < total / 2  # the server read the new turn only
        assert REPLY in s.text()
    finally:
        s.close()


# -- faults ------------------------------------------------------------------------------------------


def test_ctrl_c_closes_the_stream_and_the_server_stops(tools: Path, looping_gguf: Path) -> None:
    server = Served(tools, looping_gguf)
    try:
        proc = popen_cli(
            "ask", str(looping_gguf), "go", "--server", server.url, "--max-tokens", "20000",
            *GREEDY,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.read(20)  # streaming
        assert server.busy()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        deadline = time.monotonic() + 1.0
        while server.busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.busy()  # idle again within a second
    finally:
        server.stop()


def test_a_server_that_dies_mid_reply_drops_the_turn_and_comes_back(
    tools: Path, looping_gguf: Path
) -> None:
    server = Served(tools, looping_gguf)
    engine = LlamaServerEngine(server.url)
    chat = chat_on(engine)
    try:
        list(chat.send("first"))
        before = chat.prompt_text()
        chat.set_sampling(max_tokens=20000)
        events = chat.send("second")
        next(events)
        server.stop()  # killed mid-reply
        with pytest.raises(ServerGone, match="went away mid-reply"):
            list(events)
        assert chat.prompt_text() == before and len(chat.conversation.turns) == 1
        server = Served(tools, looping_gguf, port=server.port)  # back on the same address
        chat.set_sampling(max_tokens=8)
        done = next(e for e in chat.send("third") if isinstance(e, Done))
        assert done.generated > 0 and len(chat.conversation.turns) == 2
    finally:
        engine.close()
        server.stop()


def test_server_faults_are_one_line(tools: Path, script_gguf: Path, tmp_path: Path) -> None:
    from airochat.adapters.server_process import free_port

    gone = run_cli("ask", "-", "hi", "--server", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 1 and "cannot reach the server" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1
    keyed = Served(tools, script_gguf, "--api-key", "sesame")
    try:
        refused = run_cli("ask", "-", "hi", "--server", keyed.url, "--server-kind", "llama")
        assert refused.returncode == 1 and "--api-key" in refused.stderr, refused.stderr
        ok = run_cli("ask", "-", "hi", "--server", keyed.url, "--api-key", "sesame", *GREEDY)
        assert ok.returncode == 0 and "sesame" not in ok.stdout + ok.stderr  # never printed
    finally:
        keyed.stop()
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'error: the GPU is on fire' >&2\nexit 1\n")
    fake.chmod(0o755)
    failed = run_cli("ask", str(script_gguf), "hi", "--engine", "llama-server",
                     "--llama-server", str(fake))  # fmt: skip
    assert failed.returncode == 1 and "the GPU is on fire" in failed.stderr


def test_a_small_server_context_drops_old_exchanges(tools: Path, script_gguf: Path) -> None:
    server = Served(tools, script_gguf, "-c", "256")
    engine = LlamaServerEngine(server.url)
    chat = chat_on(engine)
    try:
        notices = []
        for i in range(12):
            events = list(chat.send(f"question number {i}"))
            notices += [e for e in events if type(e).__name__ == "Notice"]
        assert notices and engine.n_ctx == 256
        assert len(chat.conversation.tokens()) <= 256
    finally:
        engine.close()
        server.stop()


# -- a llama-server started by airochat, and RPC workers ---------------------------------------------


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_started_llama_server_never_outlives_airochat(
    tools: Path, script_gguf: Path, sig: int, code: int
) -> None:
    s = Screen(str(script_gguf), *GREEDY, "--engine", "llama-server",
               "--llama-server", str(tools / "llama-server"), "--no-input-history")  # fmt: skip
    s.child.expect_exact(">>>", timeout=120)
    s.child.send("Where?\r")
    s.child.expect("tok/s")
    s.child.expect_exact(">>>")
    assert REPLY in s.text() and "llama-server (started here" in s.text()
    servers = _children(s.child.pid)
    assert len(servers) == 1
    os.kill(s.child.pid, sig)
    s.child.expect(pexpect.EOF, timeout=30)
    s.child.close()
    assert (s.child.exitstatus if s.child.exitstatus is not None else -s.child.signalstatus) == code
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{servers[0]}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{servers[0]}"), "llama-server outlived airochat"


def test_layers_on_two_rpc_workers(tools: Path, script_gguf: Path, tmp_path: Path) -> None:
    from airochat.adapters.server_process import free_port

    workers, logs = [], []
    for i in range(2):
        port = free_port()
        log = tmp_path / f"rpc{i}.log"
        logs.append(log)
        argv = [str(tools / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(port)]
        proc = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT)
        workers.append((port, proc))
    try:
        time.sleep(0.5)
        hosts = ",".join(f"127.0.0.1:{port}" for port, _ in workers)
        proc = run_cli("ask", str(script_gguf), "Where?", *GREEDY, "--rpc", hosts,
                       "--llama-server", str(tools / "llama-server"), "--verbose")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == REPLY
        # llama-server's own log (--verbose shows it): each worker was given a layer
        assert "assigned to device RPC0" in proc.stderr
        assert "assigned to device RPC1" in proc.stderr
        for log in logs:
            assert "Accepted client connection" in log.read_text()
    finally:
        for _, worker in workers:
            worker.kill()
            worker.wait()


def test_bench_over_a_server_has_the_local_fields(served: Served, script_gguf: Path) -> None:
    from tests.test_bench import FIELDS, TURN_FIELDS

    proc = run_cli("bench", str(script_gguf), "--server", served.url, "--turns", "3",
                   "--reply-tokens", "8", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == FIELDS and all(set(t) == TURN_FIELDS for t in result["turns"])
    assert result["baseline_decode_tps"] > 0 and result["decode_tps"] > 0
    assert all(t["prompt_eval_tokens"] < t["history_tokens"] for t in result["turns"][1:])


@pytest.fixture(scope="session")
def loop_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reply that repeats twelve lines: what n-gram and draft-model speculation both catch."""
    pieces = [f"line {i} of a reply that goes on\n" for i in range(12)]
    return write_script_model(tmp_path_factory.mktemp("loop") / "loop.gguf", pieces, loop=True)


def test_a_speculating_server_says_what_it_drafted(tools: Path, loop_gguf: Path) -> None:
    """llama-server's /completion timings carry draft_n and draft_n_accepted when it
    speculates: --json reports them, and the stats line of the REPL shows them."""
    ask = ("go", "--json", "--max-tokens", "40", *GREEDY)  # under the repetition guard
    # Lookups of 3 tokens: a line of the script is one token, the period 12.
    lookup = ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3")
    server = Served(tools, loop_gguf, *lookup, "--spec-ngram-simple-size-m", "8")
    try:
        out = json.loads(run_cli("ask", "-", *ask, "--server", server.url).stdout)
        bench = run_cli("bench", str(loop_gguf), "--server", server.url, "--turns", "2",
                        "--reply-tokens", "40", "--json")  # fmt: skip
        table = run_cli("bench", str(loop_gguf), "--server", server.url, "--turns", "1",
                        "--reply-tokens", "40")  # fmt: skip
    finally:
        server.stop()
    assert out["completion_tokens"] == 40
    assert 0 < out["draft_accepted"] <= out["draft_tokens"], out
    result = json.loads(bench.stdout)
    per_turn = sum(t["drafted"] for t in result["turns"])
    assert 0 < result["accepted"] <= result["drafted"] == per_turn
    assert "speculative drafts kept" in table.stdout, table.stdout
    # draft:MODEL through a llama-server airochat starts: its own -md, the same text.
    binary = ("--engine", "llama-server", "--llama-server", str(tools / "llama-server"))
    plain = json.loads(run_cli("ask", str(loop_gguf), *ask, *binary).stdout)
    drafted = run_cli("ask", str(loop_gguf), *ask, *binary, "--speculate", f"draft:{loop_gguf}")
    out = json.loads(drafted.stdout)
    assert out["text"] == plain["text"] and plain["draft_tokens"] == 0
    assert 0 < out["draft_accepted"] <= out["draft_tokens"], out


def test_bench_scenario_runs_llama_server_s_spec_types_in_the_same_run(
    tools: Path, loop_gguf: Path
) -> None:
    """bench --scenario --llama-server: the same prompts through a real llama-server once per
    --spec-type, each repeated on its server; on a reply that repeats its lines the n-gram
    types draft and say so from their own timings, and greedy text matches plain decoding."""
    proc = run_cli("bench", str(loop_gguf), "--scenario", "chat", "--reply-tokens", "40",
                   "--repeat", "2", "--threads", "1", "--json",
                   "--llama-server", str(tools / "llama-server"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["spec_type"]: r for r in json.loads(proc.stdout)[0]["server"]}
    assert list(rows) == ["none", "ngram-simple", "ngram-map-k", "ngram-mod", "ngram-cache"]
    assert all(len(r["tps_runs"]) == 2 and r["decode_tps"] > 0 for r in rows.values())
    assert rows["none"]["drafted"] == 0 and rows["none"]["same_text"]
    assert 0 < rows["ngram-simple"]["accepted"] <= rows["ngram-simple"]["drafted"]
    # what prompt lookup could predict of each server row's own text (here: a reply that
    # repeats its lines), beside the same figure for airochat's rows
    assert all(r["copyable"] > 0.3 for r in rows.values()), rows
