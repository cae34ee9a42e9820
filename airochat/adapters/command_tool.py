"""A user's command as a tool: argv only, never a shell.

`{input}` (or `{param}` for a function call) inside an argv element is replaced by the text,
which stays inside that one element whatever it holds (`; rm -rf ~`, `$(...)`, quotes). The text
also goes to the command's stdin. Its stdout is read up to a cap (the rest is not waited for:
the command is stopped), stderr's tail is kept for the error line, and a command that runs
past its timeout is killed with its whole process group. No command outlives the call.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_OUTPUT_BYTES = 1 << 20
_FIELD = re.compile(r"\{(\w+)\}")


class CommandFailed(Exception):
    """The command could not run, failed, or ran past its timeout (the message says which)."""


@dataclass(frozen=True)
class CommandOutput:
    text: str
    truncated: bool  # stdout went past the cap; the command was stopped there


def fill_argv(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Each `{name}` in an element replaced by its value: one element stays one element.
    Unknown names and `{{`/`}}` are left as written."""

    def one(arg: str) -> str:
        return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), arg)

    return [one(a) for a in argv]


def run_command(
    argv: Sequence[str],
    stdin_text: str,
    timeout_s: float,
    max_bytes: int = MAX_OUTPUT_BYTES,
) -> CommandOutput:
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: killed whole, and no Ctrl-C of ours
        )
    except OSError as exc:
        raise CommandFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    out = bytearray()
    err = bytearray()
    full = threading.Event()
    try:
        threads = [
            threading.Thread(target=_feed, args=(proc, stdin_text.encode()), daemon=True),
            threading.Thread(target=_read, args=(proc.stdout, out, max_bytes, full), daemon=True),
            threading.Thread(target=_read, args=(proc.stderr, err, 1 << 16, None), daemon=True),
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and not full.is_set():
            if time.monotonic() > deadline:
                _kill(proc)
                raise CommandFailed(f"{argv[0]} ran past its {timeout_s:g} s timeout; stopped")
            full.wait(0.02)
        _kill(proc)  # what is left of its group too (a child holding stdout open)
        for t in threads[1:]:
            t.join(5)
    finally:
        _kill(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    text = bytes(out[:max_bytes]).decode("utf-8", errors="replace")
    if not full.is_set() and proc.returncode != 0:
        tail = bytes(err).decode("utf-8", errors="replace").strip().splitlines()
        said = f": {tail[-1][:300]}" if tail else ""
        raise CommandFailed(f"{argv[0]} exited with status {proc.returncode}{said}")
    return CommandOutput(text, full.is_set())


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the command does not read its stdin, or it ended


def _read(stream: object, into: bytearray, cap: int, full: threading.Event | None) -> None:
    read = getattr(stream, "read1", None)
    if read is None:
        return
    try:
        while chunk := read(65536):
            if full is None:  # stderr: keep the tail
                into.extend(chunk)
                del into[: max(0, len(into) - cap)]
                continue
            into.extend(chunk[: cap + 1 - len(into)])
            if len(into) > cap:
                full.set()
                return
    except (OSError, ValueError):
        return


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, 9)  # SIGKILL (signals are imported in one module only)
    except (ProcessLookupError, PermissionError):
        if proc.poll() is None:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
