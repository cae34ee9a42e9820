"""Servers that lie, stall or flood, each met through the real console script (`airochat ask
--server URL`): one line and a non-zero exit, never a traceback, nothing empty saved; every
wait on a server yields to Ctrl-C and SIGTERM within a second; --max-tokens holds whatever the
server does (issue 22 items 7, 8, 11)."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import lying_server as lies
from tests.conftest import popen_cli, run_cli
from tests.lying_server import Banner, LyingServer


@dataclass
class Case:
    name: str
    kind: str  # --server-kind
    lies: dict[str, lies.Answer] = field(default_factory=dict)
    says: str = ""  # in the one line on stderr


CASES = [
    Case("tokenize-ids-as-strings", "llama", {"/tokenize": lies.answer({"tokens": ["1", "2"]})},
         "no token ids"),
    Case("tokenize-ids-as-floats", "llama", {"/tokenize": lies.answer({"tokens": [1.5, 2.0]})},
         "no token ids"),
    Case("props-as-a-list", "llama", {"/props": lies.answer([1, 2, 3])}, "not a JSON object"),
    Case("models-a-string", "openai", {"/v1/models": lies.answer("models")}, "not a JSON object"),
    Case("n_ctx-abc", "llama",
         {"/props": lies.answer({**lies.props(), "default_generation_settings": {"n_ctx": "abc"}})},
         "n_ctx is not a number"),
    Case("choices-a-dict", "openai",
         {"/v1/completions": lambda h: h.sse(iter([{"choices": {"text": "x"}}]))},
         "choices is not a list"),
    Case("redirect-on-completion", "llama", {"/completion": lies.redirect}, "302, a redirect"),
    Case("huge-line", "llama", {"/completion": lies.huge_line}, "a line over 4 MiB"),
    Case("props-not-json", "llama", {"/props": lambda h: h.raw(b"<html>")}, "not JSON"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_lying_server_is_one_line_and_nothing_empty_is_saved(case: Case, tmp_path: Path) -> None:
    session = tmp_path / "chat.json"
    with LyingServer(case.lies) as server:
        proc = run_cli(
            "ask", "m", "Hello?", "--server", server.url, "--server-kind", case.kind,
            "--session", str(session), timeout=60,
        )  # fmt: skip
    err = proc.stderr.strip()
    assert proc.returncode != 0, (proc.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) <= 3, err
    assert case.says in err.splitlines()[-1], err
    if session.exists():
        saved = json.loads(session.read_text())
        assert all(t.get("reply") for t in saved.get("turns", [])), saved


def test_a_stream_token_that_is_not_an_id_keeps_the_text() -> None:
    bad = {
        "/completion": lambda h: h.sse(
            iter([{"content": "Yes.", "tokens": ["z"]}, {"content": "", "stop": True}])
        )
    }
    with LyingServer(bad) as server:
        proc = run_cli("ask", "m", "Hello?", "--server", server.url, "--server-kind", "llama")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "Yes."


def test_an_ssh_banner_is_one_line_at_once() -> None:
    with Banner() as banner:
        start = time.monotonic()
        proc = run_cli("ask", "m", "Hello?", "--server", banner.url, timeout=30)
    assert time.monotonic() - start < 10
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "is not an HTTP server" in proc.stderr and "SSH-2.0" in proc.stderr, proc.stderr


@pytest.mark.parametrize("kind", ["llama", "openai"])
def test_a_server_that_ignores_max_tokens_is_cut_off(kind: str) -> None:
    path = "/completion" if kind == "llama" else "/v1/completions"
    with LyingServer({path: lies.flood(kind)}) as server:
        start = time.monotonic()
        proc = run_cli(
            "ask", "m", "Hello?", "--server", server.url, "--server-kind", kind,
            "--max-tokens", "8", timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 20
    assert len(proc.stdout.strip()) == 8, proc.stdout


STALLS = {"silence-after-headers": lies.stall_after_headers, "a-byte-every-5s": lies.drip}


@pytest.mark.parametrize("stall", sorted(STALLS))
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stalled_server_yields_to_signals_within_a_second(
    stall: str, sig: signal.Signals, code: int
) -> None:
    with LyingServer({"/completion": STALLS[stall]}) as server:
        proc = popen_cli("ask", "m", "Hello?", "--server", server.url, "--server-kind", "llama")
        try:
            deadline = time.monotonic() + 30
            while "/completion" not in server.seen and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # in the stall
            proc.send_signal(sig)
            start = time.monotonic()
            rc = proc.wait(10)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate()
    assert rc == code, err
    assert took < 1.0, took
    assert b"Traceback" not in err, err
