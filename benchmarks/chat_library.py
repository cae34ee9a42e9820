"""The chat library at scale: `chats search` over 10,000 chats, and one chat of 10,000 turns
listed, shown and resumed. Builds the library in a temporary data dir (its own XDG_DATA_HOME),
then times the real code paths: in-process (services/library.py) and, for the whole command,
the console script.

    .venv/bin/python benchmarks/chat_library.py            # prints one JSON object
    /work/bin/cpu-exclusive .venv/bin/python benchmarks/chat_library.py

The resume is `ask --chat ID --print-prompt` on a tiny real GGUF: the library is opened, the
chat loaded and every turn rebuilt (tokenized) into the chat, as `run --chat` and `-c` do,
without generating.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "garden",
    "engine",
    "window",
    "forest",
    "silver",
    "coffee",
    "planet",
    "mirror",
    "lantern",
    "harbor",
    "violet",
    "thunder",
    "marble",
    "pepper",
    "canyon",
    "meadow",
    "rocket",
    "saddle",
    "tunnel",
    "walnut",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build(db: Path, chats: int, turns: int, long_turns: int) -> int:
    from airochat.adapters.chat_db import ChatDb
    from airochat.domain.transcript import SavedChat, SavedTurn

    rng = random.Random(7)
    library = ChatDb.open(db)
    library.conn.execute("PRAGMA synchronous = OFF")  # building only; saves run FULL
    for i in range(chats):
        said = [
            SavedTurn(f"{sentence(rng, 12)} q{i}x{t}", sentence(rng, 60), [1] * 80, "stop")
            for t in range(turns)
        ]
        if i == chats // 2:
            said[0].reply += " zanzibar"  # one rare word, in one chat
        library.save(None, SavedChat("tiny.gguf", "chatml", "S.", True, {}, said), [], 0, "tiny")
    long = [
        SavedTurn(f"message {t} {sentence(rng, 8)}", sentence(rng, 30), [5] * 40, "stop")
        for t in range(long_turns)
    ]
    chat_id, _ = library.save(
        None, SavedChat("tiny.gguf", "chatml", "S.", True, {}, long), [], 0, ""
    )
    library.close()
    return chat_id


def timed(fn: object, runs: int) -> float:
    """Median wall seconds of `fn()` over `runs`."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cli(*args: str) -> float:
    exe = str(Path(sys.executable).with_name("airochat"))
    t0 = time.perf_counter()
    proc = subprocess.run([exe, *args], capture_output=True)
    took = time.perf_counter() - t0
    assert proc.returncode in (0, 1), proc.stderr.decode()[-500:]
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=10_000)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--long-turns", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_DATA_HOME"] = tmp
        os.environ["XDG_CONFIG_HOME"] = tmp
        from airochat.services import library

        db = library.db_path()
        t0 = time.perf_counter()
        long_id = build(db, args.chats, args.turns, args.long_turns)
        build_s = time.perf_counter() - t0
        from tests.tiny_model import write_tiny_llama

        model = write_tiny_llama(Path(tmp) / "tiny.gguf")
        out = {
            "chats": args.chats + 1,
            "turns": args.chats * args.turns + args.long_turns,
            "db_mib": round(sum(p.stat().st_size for p in db.parent.glob("chats.db*")) / 2**20, 1),
            "build_s": round(build_s, 1),
            "search_rare_ms": timed(lambda: library.search(db, ["zanzibar"]), 20) * 1e3,
            "search_common_ms": timed(lambda: library.search(db, ["apple", "river"]), 20) * 1e3,
            "list_all_ms": timed(lambda: library.list_chats(db), 5) * 1e3,
            "long_show_ms": timed(lambda: library.show(db, long_id), 5) * 1e3,
            "cli_search_s": cli("chats", "search", "zanzibar"),
            "cli_list_s": cli("chats"),
            "cli_long_show_s": cli("chats", "show", str(long_id)),
            "cli_long_resume_s": cli(
                "ask",
                "--chat",
                str(long_id),
                "x",
                "--print-prompt",
                "--ctx",
                "512",
                "--template",
                "chatml",
                "--threads",
                "1",
            ),
            "cli_version_s": cli("--version"),  # the start-up every command pays
        }
        del model
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
