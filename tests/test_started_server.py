"""A llama-server airochat starts leaves nothing behind (issue 22 item 14): not its log when it
ends well, and not itself when airochat is killed outright, even if it ignores SIGTERM. The
server here is a script standing in for one: it never answers, so airochat waits for it. And
it is started with the in-process engine's settings (flash attention off on a CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from airochat.adapters.server_process import ServerFlags
from airochat.domain.load_options import LoadOptions
from tests.conftest import popen_cli, run_cli


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":  # dead, waiting for init to reap it
            return True
        time.sleep(0.05)
    return False


def fake_server(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "llama-server"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_a_server_that_ignores_sigterm_dies_with_a_killed_airochat(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    stubborn = fake_server(tmp_path, "trap '' TERM\nwhile :; do sleep 0.2; done")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = popen_cli("ask", str(tiny_gguf), "Hi", "--engine", "llama-server",
                     "--llama-server", str(stubborn), env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (servers := _children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert servers, "the server was not started"
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _gone(servers[0], 5), "the server outlived airochat"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_the_log_of_a_server_that_failed_is_kept_and_named(tiny_gguf: Path, tmp_path: Path) -> None:
    failing = fake_server(tmp_path, "echo 'error: cannot load the model' >&2\nexit 3")
    cache = tmp_path / "cache"
    proc = run_cli("ask", str(tiny_gguf), "Hi", "--engine", "llama-server",
                   "--llama-server", str(failing), env={"XDG_CACHE_HOME": str(cache)})  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    logs = list((cache / "airochat" / "llama-server").glob("*.log"))
    assert len(logs) == 1 and "cannot load the model" in logs[0].read_text()
    assert str(logs[0]) in proc.stderr and "cannot load the model" in proc.stderr


def test_the_log_of_a_server_that_ended_well_is_removed(tiny_gguf: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    serving = fake_server(
        tmp_path, f'cd {root} && exec {sys.executable} -m tests.lying_server "$@"'
    )
    cache = tmp_path / "cache"
    proc = run_cli("ask", str(tiny_gguf), "Hi", "--engine", "llama-server",
                   "--llama-server", str(serving), env={"XDG_CACHE_HOME": str(cache)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Hi there."
    assert not list((cache / "airochat" / "llama-server").glob("*.log"))


def test_a_cpu_only_server_decodes_without_flash_attention_as_in_process() -> None:
    cpu = ServerFlags(LoadOptions(Path("m.gguf"), n_ctx=4096, n_threads=2)).argv("srv", 8080)
    assert cpu[cpu.index("--flash-attn") + 1] == "off"
    gpu = ServerFlags(LoadOptions(Path("m.gguf"), 4096, 2, n_gpu_layers=20)).argv("srv", 8080)
    assert "--flash-attn" not in gpu  # the server's own choice where layers are offloaded
    q8 = ServerFlags(LoadOptions(Path("m.gguf"), 4096, 2, kv_type="q8_0")).argv("srv", 8080)
    assert q8[q8.index("--flash-attn") + 1] == "on"  # a quantized V cache needs it
