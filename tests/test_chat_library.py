"""The chat library through the real console script: every `ask` chat kept in SQLite, listed,
found by a word, shown, exported (the JSON loads with --session), imported, deleted without a
trace in the database file's bytes; resumed with -c reading only the new turn (counted by
llama.cpp); a corrupt, newer or unwritable library said in one line, the chat going on."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

ARGS = ("--max-tokens", "8", "--temperature", "0", "--threads", "1", "--system", "S.")


@pytest.fixture(scope="session")
def zebra_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose greedy reply is always "The zebra sings tonight"."""
    from tests.script_model import write_script_model

    pieces = ["The zebra sings tonight"]
    return write_script_model(tmp_path_factory.mktemp("zebra") / "zebra.gguf", pieces)


def library_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "airochat"


def ask(*args: str) -> tuple[dict[str, object], str]:
    proc = run_cli("ask", *args, "--json", *ARGS)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout), proc.stderr


def chats() -> list[dict[str, object]]:
    proc = run_cli("chats", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list)
    return data


def db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in library_dir(tmp_path).glob("chats.db*"))


def test_every_ask_is_kept_listed_newest_first_and_private(
    zebra_gguf: Path, tmp_path: Path
) -> None:
    ask(str(zebra_gguf), "first chat about okapis")
    ask(str(zebra_gguf), "second chat about ferns\nwith a second line")
    listed = chats()
    assert [c["title"] for c in listed] == ["second chat about ferns", "first chat about okapis"]
    assert listed[0]["turns"] == 1 and listed[0]["model"] == "zebra.gguf"
    db = library_dir(tmp_path) / "chats.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    table = run_cli("chats")
    assert table.returncode == 0
    assert "second chat about ferns" in table.stdout.splitlines()[1]
    assert run_cli("chats", "list").stdout == table.stdout  # the command users type too
    assert run_cli("chats", "list", "--json").stdout == run_cli("chats", "--json").stdout


def test_continue_reads_only_the_new_turn_and_search_finds_it(
    zebra_gguf: Path, tmp_path: Path
) -> None:
    ask(str(zebra_gguf), "hello world")
    out, err = ask("-c", "what is the capital")
    assert "resumed 1 exchange(s) from chat 1" in err
    assert "loaded the model's cache" in err
    new_turn = len(" USER: what is the capital ASSISTANT: ") + 4
    assert out["prompt_eval_tokens"] < new_turn < out["prompt_tokens"], out
    assert [c["turns"] for c in chats()] == [2]
    assert chats()[0]["cache_bytes"]
    found = run_cli("chats", "search", "capital")
    assert found.returncode == 0, found.stderr
    assert "chat 1 · exchange 2 · hello world" in found.stdout
    assert "what is the capital" in found.stdout
    assert "The zebra sings tonight" in run_cli("chats", "search", "ZEBRA").stdout
    missing = run_cli("chats", "search", "nowhere")
    assert missing.returncode == 1 and not missing.stdout


def test_show_export_and_the_json_loads_with_session(zebra_gguf: Path, tmp_path: Path) -> None:
    ask(str(zebra_gguf), "tell me about okapis")
    shown = run_cli("chats", "show", "1")
    assert "> tell me about okapis" in shown.stdout and "The zebra sings tonight" in shown.stdout
    as_json = json.loads(run_cli("chats", "show", "1", "--json").stdout)
    assert as_json["turns"][0]["reply"] == "The zebra sings tonight"
    md = tmp_path / "chat.md"
    assert run_cli("chats", "export", "1", "-o", str(md)).returncode == 0
    assert "## 1. You\n\ntell me about okapis" in md.read_text()
    assert run_cli("chats", "show", "1", "--markdown").stdout == md.read_text()
    session = tmp_path / "chat.json"
    assert run_cli("chats", "export", "1", "-o", str(session)).returncode == 0
    _, err = ask(str(zebra_gguf), "and more", "--session", str(session))
    assert "resumed 1 exchange(s) from" in err
    assert len(json.loads(session.read_text())["turns"]) == 2
    bad = run_cli("chats", "export", "1", "-o", str(tmp_path / "chat.txt"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_import_brings_session_files_in(zebra_gguf: Path, tmp_path: Path) -> None:
    session = tmp_path / "s.json"
    ask(str(zebra_gguf), "kept in a file", "--session", str(session))
    assert chats() == []  # --session is its own place
    done = run_cli("chats", "import", str(session))
    assert done.returncode == 0 and "as chat 1" in done.stderr
    assert [c["title"] for c in chats()] == ["kept in a file"]
    (tmp_path / "bad.json").write_text("{")
    bad = run_cli("chats", "import", str(tmp_path / "bad.json"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and len(chats()) == 1


def test_rm_leaves_no_trace_of_the_chat_in_the_file(zebra_gguf: Path, tmp_path: Path) -> None:
    ask(str(zebra_gguf), "a secret about okapis")
    ask("-c", "more okapis please")
    ask(str(zebra_gguf), "something about ferns")
    assert b"okapis" in db_bytes(tmp_path)
    gone = run_cli("chats", "rm", "1")
    assert gone.returncode == 0 and "deleted 1 chat(s)" in gone.stderr
    assert b"okapis" not in db_bytes(tmp_path)
    assert b"ferns" in db_bytes(tmp_path)
    assert [c["id"] for c in chats()] == [2]
    assert not list((library_dir(tmp_path) / "chat-cache").glob("chat-1-*"))
    assert run_cli("chats", "search", "okapis").returncode == 1
    assert run_cli("chats", "rm", "7").returncode == 2


def test_rm_older_than(zebra_gguf: Path, tmp_path: Path) -> None:
    ask(str(zebra_gguf), "an old chat")
    ask(str(zebra_gguf), "a new chat")
    with sqlite3.connect(library_dir(tmp_path) / "chats.db") as conn:
        conn.execute("UPDATE chats SET updated = updated - 40 * 86400 WHERE id = 1")
    assert run_cli("chats", "rm", "--older-than", "30d").returncode == 0
    assert [c["title"] for c in chats()] == ["a new chat"]
    bad = run_cli("chats", "rm", "--older-than", "a while")
    assert bad.returncode == 2 and "30d" in bad.stderr


def test_incognito_and_keep_chats_false_keep_nothing(zebra_gguf: Path, tmp_path: Path) -> None:
    ask(str(zebra_gguf), "not kept", "--incognito")
    config = tmp_path / "config" / "airochat"
    config.mkdir(parents=True)
    (config / "config.toml").write_text("keep_chats = false\n")
    ask(str(zebra_gguf), "not kept either")
    assert chats() == []
    clash = run_cli("ask", "-c", "x", "--incognito", *ARGS)
    assert clash.returncode == 2 and "--incognito" in clash.stderr


@pytest.mark.parametrize("damage", ["corrupt", "newer", "not a folder"])
def test_a_library_that_cannot_be_used_is_one_line_and_the_chat_goes_on(
    zebra_gguf: Path, tmp_path: Path, damage: str
) -> None:
    env = None
    if damage == "not a folder":
        (tmp_path / "afile").write_text("x")
        env = {"XDG_DATA_HOME": str(tmp_path / "afile")}
    else:
        ask(str(zebra_gguf), "a chat")
        db = library_dir(tmp_path) / "chats.db"
        if damage == "corrupt":
            db.write_bytes(b"this is no database" * 300)
            for side in db.parent.glob("chats.db-*"):
                side.unlink()
        else:
            with sqlite3.connect(db) as conn:
                conn.execute("PRAGMA user_version = 99")
    before = db_bytes(tmp_path)
    proc = run_cli("ask", str(zebra_gguf), "goes on", "--json", *ARGS, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["text"] == "The zebra sings tonight"
    assert "this chat goes on unsaved" in proc.stderr and "Traceback" not in proc.stderr
    listing = run_cli("chats", env=env)
    if damage != "not a folder":
        assert listing.returncode == 1
        says = "newer airochat" if damage == "newer" else "corrupt"
        assert says in listing.stderr and len(listing.stderr.strip().splitlines()) == 1
        if damage == "corrupt":
            assert db_bytes(tmp_path) == before  # left as it was
            assert "move it aside and a new library starts there" in listing.stderr
        else:
            with sqlite3.connect(library_dir(tmp_path) / "chats.db") as conn:
                assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
                assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 1
    resume = run_cli("ask", "-c", "again", *ARGS, env=env)
    assert resume.returncode != 0 and "Traceback" not in resume.stderr


def test_two_writers_on_two_chats_lose_no_turn(zebra_gguf: Path, tmp_path: Path) -> None:
    """Two scripts, each continuing its own chat turn after turn, at the same time."""
    ask(str(zebra_gguf), "chat one")
    ask(str(zebra_gguf), "chat two")
    script = (
        "import subprocess, sys\n"
        "for i in range(4):\n"
        "    r = subprocess.run([sys.argv[1], 'ask', '--chat', sys.argv[2], f'turn {i}',"
        " *sys.argv[3:]], capture_output=True)\n"
        "    assert r.returncode == 0, r.stderr\n"
    )
    from tests.conftest import airochat_exe

    procs = [
        subprocess.Popen([sys.executable, "-c", script, airochat_exe(), str(n), *ARGS])
        for n in (1, 2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert sorted(c["turns"] for c in chats()) == [5, 5]


def test_a_writer_killed_mid_save_leaves_the_library_whole(tmp_path: Path) -> None:
    """SIGKILL at a random moment of a process saving turn after turn: the database opens,
    passes its integrity check, and each chat holds whole turns only."""
    db = tmp_path / "lib" / "chats.db"
    writer = (
        "import sys\n"
        "from pathlib import Path\n"
        "from airochat.services.library import LibraryStore\n"
        "from airochat.domain.transcript import SavedChat, SavedTurn\n"
        "s = LibraryStore(Path(sys.argv[1]), None, 'm', 1 << 30, False)\n"
        "s.open(0)\n"
        "turns = []\n"
        "for i in range(100000):\n"
        "    turns.append(SavedTurn('m%d ' % i + 'x' * 3000, 'r%d' % i, [i] * 200, 'stop'))\n"
        "    s.save(SavedChat('m', 'chatml', 'S.', True, {}, turns))\n"
        "    if i == 3: print('going', flush=True)\n"
    )
    for delay in (0.05, 0.2, 0.4):
        proc = subprocess.Popen([sys.executable, "-c", writer, str(db)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"going\n"
        import time

        time.sleep(delay)
        proc.kill()
        proc.wait()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("INSERT INTO turns_fts(turns_fts) VALUES ('integrity-check')")
            rows = conn.execute("SELECT id, turn_count FROM chats").fetchall()
            for chat_id, count in rows:
                turns = conn.execute(
                    "SELECT COUNT(*), MAX(pos) FROM turns WHERE chat_id = ?", (chat_id,)
                ).fetchone()
                assert turns[0] == count and turns[1] == count - 1
    env = {"XDG_DATA_HOME": str(tmp_path)}
    os.rename(db.parent, tmp_path / "airochat")
    listing = run_cli("chats", "--json", env=env)
    assert listing.returncode == 0 and len(json.loads(listing.stdout)) == 3


def test_text_from_a_kept_chat_reaches_the_terminal_without_control_sequences(
    tmp_path: Path,
) -> None:
    session = tmp_path / "s.json"
    turn = {
        "message": "paint \x1b[31mred\x1b[0m okapi \u202eipako",
        "reply": "a \x1b]0;title\x07 reply okapi",
        "reply_tokens": [1],
        "finish_reason": "stop",
    }
    data = {
        "schema": "airochat-session", "version": 2, "model": "m", "template": "chatml",
        "system": "S.", "history": True, "sampling": {}, "turns": [turn],
    }  # fmt: skip
    session.write_text(json.dumps(data))
    assert run_cli("chats", "import", str(session)).returncode == 0
    for args in (("chats",), ("chats", "show", "1"), ("chats", "search", "okapi")):
        out = run_cli(*args).stdout
        assert "okapi" in out and "\x1b" not in out and "\x07" not in out, args
        assert "\u202e" not in out, args  # a bidi override would reorder the line
    assert "paint \\x1b[31mred\\x1b[0m okapi <U+202E>ipako" in run_cli("chats", "show", "1").stdout
    assert json.loads(run_cli("chats", "show", "1", "--json").stdout)["turns"][0] == {
        **turn,
        "reply_prefix": "",
    }


def test_the_caches_are_kept_within_the_cap_least_recently_used_dropped_first(
    tmp_path: Path,
) -> None:
    from airochat.services.library import cache_dir, prune_caches

    db = tmp_path / "lib" / "chats.db"
    folder = cache_dir(db)
    folder.mkdir(parents=True)
    for age, chat in enumerate((3, 2, 1)):  # chat 1 used last, chat 3 longest ago
        kv = folder / f"chat-{chat}-abc.kv"
        kv.write_bytes(b"x" * 1000)
        os.utime(kv, (1000.0 + age, 1000.0 + age))
    dropped = prune_caches(db, 2500)
    assert [p.name for p in dropped] == ["chat-3-abc.kv"]
    assert sorted(p.name for p in folder.iterdir()) == ["chat-1-abc.kv", "chat-2-abc.kv"]


def test_chats_with_a_cache_cap_of_zero_keep_no_cache(zebra_gguf: Path, tmp_path: Path) -> None:
    config = tmp_path / "config" / "airochat"
    config.mkdir(parents=True)
    (config / "config.toml").write_text("chat_cache_max_mb = 0\n")
    ask(str(zebra_gguf), "hello")
    assert chats()[0]["cache_bytes"] is None
    _, err = ask("-c", "again")
    assert "loaded the model's cache" not in err


def test_ask_killed_at_any_moment_leaves_the_library_whole(
    zebra_gguf: Path, tmp_path: Path
) -> None:
    """`ask -c` SIGKILLed at moments spread over its run (start, load, reply, save): every
    time the library opens, checks whole, and holds whole turns."""
    import time

    from tests.conftest import popen_cli

    ask(str(zebra_gguf), "the first turn")
    for i in range(10):
        proc = popen_cli("ask", "-c", f"turn {i}", *ARGS)
        time.sleep(0.15 * i)
        proc.kill()
        proc.communicate()
    db = library_dir(tmp_path) / "chats.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = conn.execute("SELECT turn_count FROM chats").fetchone()[0]
        assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == count
    out, _ = ask("-c", "after the kills")
    assert out["text"] == "The zebra sings tonight"
    assert chats()[0]["turns"] == count + 1


def test_a_chat_in_a_card_s_prompt_shape_is_titled_by_what_was_asked(
    zebra_gguf: Path, tmp_path: Path
) -> None:
    """The first message of a plan, a function call or a closed-context question is the
    card's prompt; the library titles the chat by the user's question."""
    from airochat.domain.chat_library import title_of
    from airochat.domain.closed_context import Document, closed_context
    from airochat.domain.functions import functions_prompt
    from airochat.domain.rewoo import CARD_TOOLS, planning_prompt

    tools = list(CARD_TOOLS.items())
    assert title_of(planning_prompt(tools, "Who won in 2020?")) == "Who won in 2020?"
    functions = {"search": {"description": "Search.", "parameters": {}}}
    assert title_of(functions_prompt(functions, "Find me a cat")) == "Find me a cat"
    qa = closed_context([Document("Text.", {"source": "a.txt"})], "What does it say?", {})
    assert title_of(qa) == "What does it say?"
    doc = tmp_path / "notes.txt"
    doc.write_text("The meeting is on Tuesday.\n")
    ask(str(zebra_gguf), "--context", str(doc), "When is the meeting?")
    assert [c["title"] for c in chats()] == ["When is the meeting?"]
