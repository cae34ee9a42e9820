"""Session files are written whole or not at all, privately."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airochat.adapters.storage import StorageError, read_json, write_json

WRITER = """
import sys
from pathlib import Path
from airochat.adapters.storage import write_json
print("ready", flush=True)
write_json(Path(sys.argv[1]), {"schema": "new", "blob": "x" * 150_000_000})
print("done", flush=True)
"""


def test_write_is_private_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    write_json(path, {"a": 1})
    assert read_json(path) == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_killed_mid_save_leaves_old_file_or_new_never_half(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "chat.json"
    write_json(path, {"schema": "old"})
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)  # a real crash, wherever the save is
    proc.wait()
    data = json.loads(path.read_text())  # always complete JSON
    assert data["schema"] in ("old", "new")
    if data["schema"] == "new":
        assert len(data["blob"]) == 150_000_000


def test_failed_save_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json(path, {"v": object()})  # not serialisable: fails before touching the file
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["chat.json"]


def test_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": ')
    with pytest.raises(StorageError, match="corrupt or truncated"):
        read_json(bad)
    with pytest.raises(StorageError, match="no such file"):
        read_json(tmp_path / "missing.json")
