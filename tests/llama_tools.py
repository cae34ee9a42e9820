"""llama.cpp's own llama-server and rpc-server for the tests, built once per llama-cpp-python
version from the llama.cpp sources inside that version's sdist (the same code as the bindings).

The build is cached outside the repository, keyed by version, in
`$AIROCHAT_TOOLS_CACHE` (default `~/.cache/airochat-tools`): about 10 minutes on 2 cores the
first time, nothing afterwards. A lock file makes parallel callers wait for one build.

    python -m tests.llama_tools        # build now (prints the bin directory)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

TARGETS = ("llama-server", "ggml-rpc-server")


def cache_root() -> Path:
    env = os.environ.get("AIROCHAT_TOOLS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "airochat-tools"


def bin_dir() -> Path:
    return cache_root() / f"llama.cpp-{version('llama-cpp-python')}" / "bin"


def built() -> bool:
    return all((bin_dir() / t).is_file() for t in TARGETS)


def _sdist(work: Path, log: Path) -> Path:
    ver = version("llama-cpp-python")
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    _quiet([*pip, f"llama-cpp-python=={ver}", "-d", str(work)], log)
    archive = next(work.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))


def _quiet(argv: list[str], log: Path) -> None:
    """Run a build step with its (very long) output in a log; its tail if it fails."""
    with log.open("ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n" + "\n".join(tail))


def build() -> Path:
    """Build (or find) the two binaries; returns their directory."""
    out = bin_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait and reuse it
        if built():
            return out
        with tempfile.TemporaryDirectory(prefix="llama-tools-") as tmp:
            log = out.parent / "build.log"  # kept: what a failed or slow build did
            log.unlink(missing_ok=True)
            src = _sdist(Path(tmp), log)
            build_dir = Path(tmp) / "build"
            flags = [
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_RPC=ON",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_OPENSSL=OFF",
                "-DLLAMA_USE_PREBUILT_UI=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DBUILD_SHARED_LIBS=OFF",
            ]
            _quiet(["cmake", "-S", str(src), "-B", str(build_dir), *flags], log)
            jobs = str(os.cpu_count() or 2)
            _quiet(["cmake", "--build", str(build_dir), "-j", jobs, "--target", *TARGETS], log)
            staging = out.with_name("bin.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            for target in TARGETS:
                shutil.copy2(build_dir / "bin" / target, staging / target)
            staging.rename(out)
    return out


if __name__ == "__main__":
    print(build())
