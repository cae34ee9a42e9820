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

import pexpect
import pytest

from airochat.adapters.speculative_server import complete
from tests import lying_server as lies
from tests.conftest import popen_cli, run_cli
from tests.lying_server import Banner, LyingServer

CHAT_SHAPED = [
    *({"choices": [{"index": 0, "delta": {"content": w}}]} for w in ("Hel", "lo")),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]


def cut_short(h: lies.Handler) -> None:
    """Text, then the connection closes: no finish_reason, no [DONE]."""
    h.sse_headers()
    for piece in ("Hel", "lo"):
        h.wfile.write(b"data: " + json.dumps({"choices": [{"text": piece}]}).encode() + b"\n\n")
    h.wfile.flush()


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
    # issue 22, round two: a completion stream in the wrong shape, or cut short
    Case("chat-shape-on-completions", "openai",
         {"/v1/completions": lambda h: h.sse(iter(CHAT_SHAPED))}, "in the chat shape"),
    Case("choices-always-empty", "openai",
         {"/v1/completions": lambda h: h.sse(iter([{"choices": []}] * 3))}, "no choices[].text"),
    Case("stream-cut-before-done", "openai", {"/v1/completions": lambda h: cut_short(h)},
         "no finish_reason, no [DONE]"),
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
    assert json.loads(run_cli("chats", "--json").stdout) == []  # nor kept in the library


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
        rc, took, err = lies.signal_in_stall(proc, server.seen, "/completion", 1, sig)
    assert rc == code, err
    assert took < 1.0, took
    assert b"Traceback" not in err, err


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    folder = tmp_path / "config" / "airochat"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(text)
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def slow_answer(h: lies.Handler) -> None:
    time.sleep(30)
    h.json(lies.props())


@pytest.mark.parametrize(
    ("path", "lie", "says", "within"),
    [
        ("/props", slow_answer, "did not answer", 5.0),
        ("/completion", lies.stall_after_headers, "sent nothing for 5 s", 10.0),
        ("/completion", lies.drip, "sent nothing for 5 s", 10.0),
    ],
    ids=["silent-answer", "silence-after-headers", "a-byte-every-5s"],
)
def test_a_silent_server_times_out_in_one_line(
    tmp_path: Path, path: str, lie: lies.Answer, says: str, within: float
) -> None:
    env = _config(tmp_path, "server_timeout = 0.5\n")
    with LyingServer({path: lie}) as server:
        start = time.monotonic()
        proc = run_cli("ask", "m", "Hello?", "--server", server.url, "--server-kind", "llama",
                       env=env, timeout=60)  # fmt: skip
        took = time.monotonic() - start
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert says in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert took < within, took


def test_a_server_without_tokenize_keeps_text_not_made_up_ids(tmp_path: Path) -> None:
    """No /tokenize: bytes stand in for tokens to size the context (exact_token_ids=False);
    the session keeps the replies' text, never those ids, and resumes from it."""
    session = tmp_path / "chat.json"
    untokenized = {p: lies.answer({"error": "no"}, 404) for p in ("/tokenize", "/props")}
    with LyingServer(untokenized, reply="Fine, thanks.") as server:
        for _ in range(2):
            proc = run_cli("ask", "m", "How are you?", "--server", server.url,
                           "--server-kind", "openai", "--session", str(session))  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.strip() == "Fine, thanks."
    saved = json.loads(session.read_text())
    turns = saved["turns"]
    assert [t["reply"] for t in turns] == ["Fine, thanks."] * 2
    assert all(not t.get("reply_tokens") for t in turns), turns


def test_ctrl_c_in_the_repl_during_a_stall_returns_to_the_prompt(tmp_path: Path) -> None:
    """The REPL over a server that sends headers then nothing: Ctrl-C returns to the prompt
    within a second, the chat goes on, Ctrl-D ends it."""
    from tests.screen import Screen

    session = tmp_path / "chat.json"
    calls = {"n": 0}

    def first_stalls(h: lies.Handler) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            lies.stall_after_headers(h)
        else:
            h.sse(lies.llama_events("Back again."))

    with LyingServer({"/completion": first_stalls}) as server:
        s = Screen("m", "--server", server.url, "--server-kind", "llama", "--session",
                   str(session), "--no-input-history")  # fmt: skip
        try:
            s.child.expect_exact(">>>", timeout=60)
            s.child.send("Hello?\r")
            deadline = time.monotonic() + 30
            while calls["n"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            s.child.sendintr()
            start = time.monotonic()
            s.child.expect_exact(">>>", timeout=5)
            assert time.monotonic() - start < 1.0
            time.sleep(0.3)
            s.child.send("Again?\r")
            try:
                s.child.expect_exact("Back again.", timeout=30)
            except pexpect.TIMEOUT:
                raise AssertionError(s.text()) from None
            s.child.expect_exact(">>>", timeout=30)
            s.child.sendeof()
            s.child.expect(pexpect.EOF, timeout=30)
        finally:
            s.close()
    saved = json.loads(session.read_text())
    assert saved["turns"][-1]["reply"] == "Back again."


@pytest.mark.parametrize(
    ("timings", "reported"),
    [
        ({"draft_n": 12, "draft_n_accepted": 9}, (12, 9)),
        ({"draft_n": 12}, (12, 0)),
        ({"draft_n": "12", "draft_n_accepted": 9}, (0, 0)),
        ({"draft_n": 3, "draft_n_accepted": 9}, (0, 0)),
        ({"draft_n": -4, "draft_n_accepted": -5}, (0, 0)),
        ({"draft_n": True, "draft_n_accepted": 1}, (0, 0)),
    ],
    ids=["speculated", "none-accepted", "as-text", "more-kept-than-drafted", "negative", "bool"],
)
def test_what_a_speculating_server_says_it_drafted_is_reported(
    timings: dict[str, object], reported: tuple[int, int]
) -> None:
    """llama-server's timings carry draft_n and draft_n_accepted when it speculates: --json
    reports them; numbers that cannot be true are not repeated."""
    lie = {"/completion": lambda h: h.sse(lies.llama_events("Hi there.", timings))}
    with LyingServer(lie) as server:
        proc = run_cli("ask", "m", "Hello?", "--server", server.url, "--server-kind", "llama",
                       "--json", timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["text"] == "Hi there."
    assert (out["draft_tokens"], out["draft_accepted"]) == reported


@pytest.mark.parametrize("tokens", ["z9", ["z"], [1, None], {"a": 1}, None])
def test_bench_s_completion_takes_no_token_ids_from_a_server_that_lies_about_them(
    tokens: object,
) -> None:
    """bench --scenario reads llama-server's /completion tokens to say what lookup could
    predict of its text; ids that are not ids count as none, never as a traceback."""
    reply = {"content": "Yes.", "tokens": tokens, "timings": {"predicted_n": 2}}
    with LyingServer({"/completion": lies.answer(reply)}) as server:
        got = complete(server.url, [1, 2, 3], 8)
    assert got["content"] == "Yes." and got["tokens"] == [] and got["predicted_n"] == 2
