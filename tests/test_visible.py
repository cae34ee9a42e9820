"""Nothing a model, a file or a server prints may control the terminal (issue 21 A).

The REPL and `ask` run in a real pseudo-terminal; the assertions read the RAW byte stream the
program wrote (what a terminal would obey), not only the screen pyte draws from it. Each attack
class is one case; a pipe keeps the reply's exact bytes."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airochat.domain.visible import is_visible, visible
from tests.conftest import run_cli
from tests.screen import Screen
from tests.script_model import write_script_model

# class: (what the reply holds, raw substrings that must never reach the terminal)
ATTACKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "csi-clear": ("A\x1b[2JCLEARED", ("\x1b[2JCLEARED",)),
    "osc52-clipboard": ("\x1b]52;c;ZWNobyBwd25lZA==\x07COPIED", ("\x1b]52",)),
    "osc0-title": ("\x1b]0;PWNED-TITLE\x07TITLED", ("\x1b]0;PWNED",)),
    "osc8-link": ("\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", ("\x1b]8;;https",)),
    "sgr8-hidden": ("\x1b[8mHIDDEN\x1b[28m", ("\x1b[8mHIDDEN",)),
    "cursor-moves": ("\x1b[5AUP\x1b[10;3HMOVED\x1b[2KGONE", ("\x1b[5AUP", "\x1b[10;3H")),
    "carriage-return": ("SECRET\rSAFE", ("SECRET\rSAFE",)),
    "backspace": ("PAID\x08\x08\x08\x08FREE", ("PAID\x08",)),
    "c1-controls": ("\u009b2JC1CSI\u009d0;C1OSC\u009c", ("\u009b", "\u009d", "\u009c")),
    "bidi": ("user\u202eexe.txt\u2066iso\u2069", ("\u202e", "\u2066", "\u2069")),
}
PIECES = ["Attack test.\n\n", *(f"{payload}\n\n" for payload, _ in ATTACKS.values()), "End."]
REPLY = "".join(PIECES)
BASE = ("--temperature", "0", "--system", "S.", "--threads", "1")


def test_visible_shows_every_control_and_keeps_text() -> None:
    assert visible("a\tb\nc é 中 🙂 `[bold]x[/bold]`") == "a\tb\nc é 中 🙂 `[bold]x[/bold]`"
    assert visible("\x1b[2J") == "\\x1b[2J"
    assert visible("\r\x08\x00\x7f") == "\\x0d\\x08\\x00\\x7f"
    assert visible("\u009b\u009d\u0085") == "\\x9b\\x9d\\x85"
    assert visible("\u202a\u202e\u2066\u2069") == "<U+202A><U+202E><U+2066><U+2069>"
    for payload, _ in ATTACKS.values():
        assert is_visible(visible(payload)) and not is_visible(payload)


@pytest.fixture(scope="module")
def attack_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_script_model(tmp_path_factory.mktemp("attack") / "attack.gguf", PIECES)


def _run_turn(gguf: Path, *extra: str) -> Screen:
    s = Screen(str(gguf), *BASE, "--no-input-history", *extra)
    s.child.expect_exact(">>>")
    s.child.send("hi\r")
    s.child.expect("tok/s")
    s.child.expect_exact(">>>")
    return s


@pytest.fixture(scope="module")
def outputs(attack_gguf: Path) -> Iterator[dict[str, Screen]]:
    """The attack reply as `run` (markdown and plain) and `ask` on a terminal show it; the
    REPL then also shows it through /prompt."""
    shown: dict[str, Screen] = {}
    for mode, extra in (("run-markdown", ()), ("run-plain", ("--plain-output",))):
        s = _run_turn(attack_gguf, *extra)
        s.child.send("/prompt\r")
        s.child.expect("End.")
        s.child.expect_exact(">>>")
        shown[mode] = s
    s = Screen(str(attack_gguf), "hi", *BASE, command="ask")
    s.child.expect(r"End\.")
    s.child.expect(pytest.importorskip("pexpect").EOF)
    shown["ask"] = s
    yield shown
    for s in shown.values():
        s.close()


@pytest.mark.parametrize("mode", ["run-markdown", "run-plain", "ask"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_no_escape_from_a_reply_reaches_the_terminal(
    outputs: dict[str, Screen], mode: str, attack: str
) -> None:
    payload, forbidden = ATTACKS[attack]
    s = outputs[mode]
    for raw in forbidden:
        assert raw not in s.raw, (attack, mode)
    # ... and the reply is shown, its controls made visible (in /prompt too, for run)
    assert s.text().count(visible(payload)) >= (2 if mode.startswith("run") else 1), s.text()


def test_a_pipe_keeps_the_reply_s_exact_bytes(attack_gguf: Path) -> None:
    proc = run_cli("ask", str(attack_gguf), "hi", *BASE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == REPLY + "\n"
    as_json = run_cli("ask", str(attack_gguf), "hi", "--json", *BASE)
    import json

    assert json.loads(as_json.stdout)["text"] == REPLY


def test_undo_shows_the_dropped_message_visible(attack_gguf: Path, tmp_path: Path) -> None:
    """A message read from a file (`/read`) quoted back by /undo ("Dropped: ...")."""
    doc = tmp_path / "pasted.txt"
    doc.write_text("say \x1b]0;READ-TITLE\x07 \u202e ok\n")
    s = Screen(str(attack_gguf), *BASE, "--no-input-history", "--max-tokens", "2")
    try:
        s.child.expect_exact(">>>")
        s.child.send(f"/read {doc}\r")
        s.child.expect("tok/s")
        s.child.expect_exact(">>>")
        s.child.send("/undo\r")
        s.child.expect("Dropped:")
        s.child.expect_exact(">>>")
        after = s.raw.rsplit("/undo", 1)[1]
        assert "\x1b]0;READ" not in after and "\u202e" not in after
        assert "Dropped: say \\x1b]0;READ-TITLE\\x07 <U+202E> ok" in s.text()
    finally:
        s.close()


def test_a_file_name_is_shown_not_obeyed_when_loading(attack_gguf: Path, tmp_path: Path) -> None:
    evil = tmp_path / "m\x1b]0;FILE-TITLE\x07\u202e.gguf"
    evil.symlink_to(attack_gguf)
    s = Screen(str(evil), *BASE, "--no-input-history")
    try:
        s.child.expect_exact(">>>")
        assert "\x1b]0;FILE" not in s.raw and "\u202e" not in s.raw
        assert "Loading" in s.text() and "\\x1b]0;FILE-TITLE" in s.text()
    finally:
        s.close()


def test_a_scene_s_title_and_characters_are_shown_not_obeyed(
    attack_gguf: Path, tmp_path: Path
) -> None:
    scene = tmp_path / "scene.yaml"
    scene.write_text(
        'title: "Inn\\e]0;SCENE-TITLE\\a"\nuser: Jon\n'
        "characters:\n"
        '  - {name: Ayla, description: "a trader\\e[2JWIPED \\u202e"}\n'
    )
    s = Screen(str(attack_gguf), *BASE, "--no-input-history", "--scene", str(scene),
               "--max-tokens", "3", "--ctx", "2048")  # fmt: skip
    try:
        s.child.expect_exact(">>>")
        s.child.send("/scene\r")
        s.child.expect("Ayla")
        s.child.expect_exact(">>>")
        for raw in ("\x1b]0;SCENE", "\x1b[2JWIPED", "\u202e"):
            assert raw not in s.raw
        assert "\\x1b]0;SCENE-TITLE" in s.text()
    finally:
        s.close()


def test_info_shows_the_file_s_name_field_visible(tmp_path: Path) -> None:
    from tests.tiny_model import write_tiny_llama

    gguf = write_tiny_llama(tmp_path / "named.gguf", name="Evil\x1b]0;META\x07[bold]x[/bold]")
    proc = run_cli("info", str(gguf))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b]0;META" not in proc.stdout and "\\x1b]0;META" in proc.stdout
    assert "[bold]x[/bold]" in proc.stdout  # shown as written, not read as rich markup


class _LyingServer(http.server.BaseHTTPRequestHandler):
    """Answers every request with an error whose body would retitle the terminal."""

    def do_GET(self) -> None:
        body = b'{"error": {"message": "no \\u001b]0;SERVER-TITLE\\u0007 [red]x[/red]"}}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lying_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LyingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_s_error_body_is_shown_not_obeyed(lying_url: str) -> None:
    proc = run_cli("ask", "hi", "--server", lying_url, "--server-kind", "openai")
    assert proc.returncode != 0
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("key", ["SECRET\nX-Evil: 1", "SECRET\x1b[2J", "SÉCRET"])
def test_a_bad_api_key_is_refused_without_showing_it(lying_url: str, key: str) -> None:
    proc = run_cli("ask", "hi", "--server", lying_url, "--server-kind", "openai", "--api-key", key)
    assert proc.returncode == 2, proc.stderr
    assert "SECRET" not in proc.stderr and "SÉCRET" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "API key" in proc.stderr


def test_models_shows_hub_names_visible(tmp_path: Path) -> None:
    """A repo and a file in the Hugging Face cache whose names would retitle the terminal, or
    read as rich markup."""
    snap = tmp_path / "hub" / "models--ev\x1b]0;HUB-TITLE\x07il--[red]x" / "snapshots"
    (snap / "abc").mkdir(parents=True)
    (snap / "abc" / "m\u202e.Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(64))
    proc = run_cli("models", env={"HF_HUB_CACHE": str(tmp_path / "hub"), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    flat = proc.stdout.replace("\n", "").replace(" ", "").replace("│", "")
    assert "\x1b]0;HUB" not in proc.stdout and "\\x1b]0;HUB-TITLE" in flat, proc.stdout
    assert "[red]x" in flat
