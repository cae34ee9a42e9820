"""llama-server started by airochat (`--engine llama-server`, `--rpc`): on 127.0.0.1 at a free
port, with the flags airochat would use in-process, stopped on every exit path.

No orphans: the child is stopped by `stop()` (called from `finally` blocks on Ctrl-D, errors,
SIGTERM and SIGHUP), by an atexit hook, and -- should airochat itself be killed outright -- by
the kernel, which sends it SIGKILL when its parent dies (PR_SET_PDEATHSIG; SIGKILL because a
server that ignores SIGTERM would otherwise outlive us). Its log lives in airochat's cache
directory, removed when the server ends well, kept and named when it fails.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airochat.adapters.locations import cache_dir
from airochat.adapters.machine import cpu_has_amx
from airochat.adapters.process_signals import child_of_airochat
from airochat.domain.load_options import LoadOptions
from airochat.errors import AirochatError

HOW_TO_GET = (
    "llama-server not found: give --llama-server PATH (or llama_server in config.toml), or put "
    "it on PATH -- from a llama.cpp release archive, your package manager (brew install "
    "llama.cpp), or built from source: cmake -B build -DGGML_RPC=ON && cmake --build build "
    "--target llama-server"
)


class ServerStartError(AirochatError):
    pass


@dataclass(frozen=True)
class ServerFlags:
    """The in-process engine's `LoadOptions`, as llama-server flags (one translation of the
    settings for both engines), plus what only a server has: RPC workers and extra flags."""

    load: LoadOptions
    rpc: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default_factory=tuple)

    def argv(self, binary: str, port: int) -> list[str]:
        o = self.load
        args = [binary, "--model", str(o.path), "--host", "127.0.0.1", "--port", str(port)]
        args += ["--ctx-size", str(o.n_ctx), "--threads", str(o.n_threads)]
        # Over RPC every layer goes to the workers; llama.cpp spreads them by their memory.
        layers = 999 if self.rpc else o.n_gpu_layers
        args += ["--n-gpu-layers", str(layers), "--parallel", "1", "--no-webui"]
        if o.rope_freq_scale:
            args += ["--rope-freq-scale", repr(o.rope_freq_scale)]
        if o.rope_freq_base:
            args += ["--rope-freq-base", repr(o.rope_freq_base)]
        if o.kv_type != "f16":
            args += ["-ctk", o.kv_type, "-ctv", o.kv_type, "--flash-attn", "on"]
        elif not layers:
            # As in process (llama-cpp-python's default). llama-server's own (auto) turns it on,
            # and on a 2-core CPU that halved decoding at 1,300 tokens of context (SmolLM2:
            # 37.7 against 74.7 tok/s). Offloaded layers keep the server's choice.
            args += ["--flash-attn", "off"]
        if not o.use_mmap:
            args += ["--no-mmap"]
        if o.use_mlock:
            args += ["--mlock"]
        if self.rpc:
            args += ["--rpc", ",".join(self.rpc)]
        if cpu_has_amx():  # ggml's AMX matmul crashes llama-server too (llama_engine.py)
            args += ["--no-repack"]
        if o.verbose:
            args += ["--verbose"]
        return [*args, *self.extra]


def find_binary(given: str | None) -> str:
    """--llama-server PATH or the config's, else llama-server on PATH."""
    if given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerStartError(f"{given} is not an executable llama-server")
        return str(path)
    found = shutil.which("llama-server")
    if found is None:
        raise ServerStartError(HOW_TO_GET)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, binary: str, flags: ServerFlags, verbose: bool = False) -> None:
        self.verbose = verbose  # show the server's log on stderr once it is up, and at the end
        self._shown = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = _log_file()
        self.argv = flags.argv(binary, self.port)
        self.failed = False  # did not start: its log is kept
        self._told = False
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=child_of_airochat,
            )
        atexit.register(self.stop)

    def wait_ready(self, timeout_s: float, progress: Callable[[str], None]) -> None:
        """Until /health answers 200; the server's last log line if it dies or never does."""
        import httpx

        deadline = time.monotonic() + timeout_s
        said = 0.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.failed = True
                raise ServerStartError(
                    f"llama-server did not start: {self.last_log_line()} (its log: {self.log})"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    self.show_log()
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() - said > 2.0:
                progress(f"llama-server is loading the model ... ({self.last_log_line()[:60]})")
                said = time.monotonic()
            time.sleep(0.1)
        self.failed = True
        self.stop()
        raise ServerStartError(
            f"llama-server was not ready in {timeout_s:.0f} s (its log: {self.log})"
        )

    def show_log(self) -> None:
        """With --verbose: what llama-server wrote since last shown, on stderr."""
        if not self.verbose:
            return
        try:
            data = self.log.read_bytes()
        except OSError:
            return
        os.write(2, data[self._shown :])
        self._shown = len(data)

    def last_log_line(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines()]
        except OSError:
            return "(no log)"
        useful = [ln for ln in lines if ln and ("error" in ln.lower() or "failed" in ln.lower())]
        return (useful or [ln for ln in lines if ln] or ["(no output)"])[-1][:300]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); safe to call more than once. Its
        log is removed when it ended well, kept (and named on stderr) when it failed."""
        ended_itself = self.proc.poll() is not None
        if not ended_itself:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.show_log()
        crashed = ended_itself and self.proc.returncode != 0
        if self.failed or crashed:
            if crashed and not self.failed and self.log.exists() and not self._told:
                os.write(
                    2, f"airochat: llama-server ended by itself; its log: {self.log}\n".encode()
                )
            self._told = True
            return
        self.log.unlink(missing_ok=True)


def _log_file() -> Path:
    """A new log file in airochat's cache directory (the temp directory if that is not
    writable)."""
    try:
        folder = cache_dir() / "llama-server"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log", dir=folder)
    except OSError:
        fd, name = tempfile.mkstemp(prefix="airochat-llama-server-", suffix=".log")
    os.close(fd)
    return Path(name)
