"""Every class of bad input a user or a downloaded file can supply, through the real console
script: one line on stderr, the documented exit code (1: something named cannot be used;
2: the command line itself is wrong), never a traceback or a hang, and files left as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.script_model import write_script_model
from tests.tiny_model import write_tiny_llama

GREEDY = ("--temperature", "0", "--max-tokens", "2", "--threads", "1")


@dataclass
class Case:
    """`args` may use {tiny}, {tmp} and {model:NAME} (a model written by `models`)."""

    args: list[str]
    code: int
    says: str
    stdin: str | bytes | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)  # written under {tmp}
    config: str | bytes | None = None  # the user's config.toml
    catalog: str | None = None  # the user's models.txt
    special: dict[str, str] = field(default_factory=dict)  # a config file as a fifo or dev-zero
    kept: bool = True  # the files are left as they were (False: a cache may be rewritten)
    full_disk: bool = False  # {tmp} is a small tmpfs, filled after the files are written


TEMPLATES = {
    "syntax": "{% for m in messages %}{{ m.content }",
    "include": "{% include 'x.j2' %}",
    "import": "{% import 'x.j2' as x %}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "range": "{% for i in range(10**9) %}x{% endfor %}",
    "nested": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "repeat": "{{ 'x' * 10**9 }}",
}
MODELS: dict[str, Callable[[Path], Path]] = {
    **{
        f"tpl-{name}": partial(write_tiny_llama, chat_template=src)
        for name, src in TEMPLATES.items()
    },
    "no-layers": lambda p: write_tiny_llama(p, n_layer=0),
    "bad-bos": lambda p: write_tiny_llama(p, bos_id=99999),
    "repeated-token": lambda p: write_tiny_llama(p, duplicate_token=300),
    # draft models for the tiny one: other tokens, the same count spelled otherwise, other BOS
    "script-a": lambda p: write_script_model(p, ["one ", "two "]),
    "script-b": lambda p: write_script_model(p, ["uno ", "dos "]),
    "bos-2": lambda p: write_tiny_llama(p, bos_id=2),
}
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

CASES = {
    # 6: chat templates matter only when used; used, they fail in one line, within a budget
    **{
        f"template-{name}-unused": Case(
            ["ask", f"{{model:tpl-{name}}}", "hi", "--template", "airoboros", *GREEDY], 0, ""
        )
        for name in TEMPLATES
    },
    **{
        f"template-{name}-used": Case(
            ["ask", f"{{model:tpl-{name}}}", "hi", *GREEDY], 1, "chat template"
        )
        for name in TEMPLATES
    },
    "info-broken-template": Case(["info", "{model:tpl-syntax}"], 0, ""),
    # 7: files that parse but have the wrong shape
    "session-string-number": Case(
        ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json", *GREEDY[:2]],
        1,
        "bad sampling settings",
        files={"s.json": "SESSION:temperature=hot"},
    ),
    "session-deep-json": Case(
        ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json"],
        1,
        "nested too deeply",
        files={"s.json": "[" * 100000 + "]" * 100000},
    ),
    "session-nan": Case(
        ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json"],
        1,
        "finite",
        files={"s.json": "SESSION:temperature=NaN"},
    ),
    "scene-characters-number": Case(
        ["ask", "{tiny}", "--scene", "{tmp}/s.yaml", "--print-prompt"],
        1,
        "characters is a list",
        files={"s.yaml": "characters: 5\n"},
    ),
    "scene-description-mapping": Case(
        ["ask", "{tiny}", "--scene", "{tmp}/s.yaml", "--print-prompt"],
        1,
        "description should be text",
        files={"s.yaml": "characters:\n  - name: A\n    description: {x: 1}\n"},
    ),
    "scene-deep-yaml": Case(
        ["ask", "{tiny}", "--scene", "{tmp}/s.yaml", "--print-prompt"],
        1,
        "s.yaml",
        files={"s.yaml": "[" * 20000 + "]" * 20000},
    ),
    "functions-list-of-strings": Case(
        ["ask", "{tiny}", "hi", "--functions", "{tmp}/f.yaml", "--print-prompt"],
        1,
        "should be a mapping with a name",
        files={"f.yaml": "- search\n- count\n"},
    ),
    "config-not-utf8": Case(["ask", "{tiny}", "hi"], 1, "not UTF-8", config=b"model = '\xff'\n"),
    "config-deep-nesting": Case(
        ["ask", "{tiny}", "hi"],
        1,
        "nested too deeply",
        config="a = " + "[" * 100_000 + "]" * 100_000,
    ),
    **{
        f"{fname}-{kind}": Case(args, 1, "not a regular file", special={fname: kind})
        for fname, args in {
            "config.toml": ["ask", "{tiny}", "hi"],
            "models.txt": ["models"],
        }.items()
        for kind in ("fifo", "dev-zero")
    },
    "config-nan": Case(["ask", "{tiny}", "hi"], 1, "finite", config="[sampling]\ntop_p = nan\n"),
    "stdin-not-utf8": Case(["ask", "{tiny}"], 1, "stdin is not UTF-8", stdin=b"caf\xe9\n"),
    # 8: memory bombs and endless inputs
    **{
        f"catalog-{name}": Case(["models"], 1, "too big for a model catalog", catalog=text)
        for name, text in {
            "100000-lines": "".join(f"m{i} owner/Model-{i}-GGUF\n" for i in range(100_000)),
            "one-huge-line": "m1 owner/repo " + "x" * (2 << 20),
        }.items()
    },
    "yaml-billion-laughs": Case(
        ["ask", "{tiny}", "--scene", "{tmp}/s.yaml", "--print-prompt"],
        1,
        "aliases",
        files={"s.yaml": BOMB + "characters: [{name: A, description: *i}]\n"},
    ),
    "context-dev-zero": Case(["ask", "{tiny}", "q", "--context", "/dev/zero"], 1, "not a regular"),
    "context-fifo": Case(["ask", "{tiny}", "q", "--context", "{tmp}/fifo"], 1, "not a regular"),
    "stdin-megabytes": Case(
        ["ask", "{tiny}", *GREEDY], 1, "the context holds", stdin="x" * 6_000_000
    ),
    # 9: what llama.cpp would abort on
    "model-no-layers": Case(["ask", "{model:no-layers}", "hi"], 1, "0 layers"),
    "info-no-layers": Case(["info", "{model:no-layers}"], 1, "0 layers"),
    "model-bos-outside-vocab": Case(["ask", "{model:bad-bos}", "hi"], 1, "outside the vocabulary"),
    "model-repeated-token": Case(["ask", "{model:repeated-token}", "hi"], 1, "both 'M'"),
    "info-repeated-token": Case(["info", "{model:repeated-token}"], 1, "repeated token"),
    "draft-other-vocabulary": Case(
        ["ask", "{tiny}", "hi", "--speculate", "draft:{model:script-a}"], 1, "another vocabulary"
    ),
    "draft-other-token-texts": Case(
        ["ask", "{model:script-a}", "hi", "--speculate", "draft:{model:script-b}"],
        1,
        "another vocabulary than script-a.gguf (the same number of tokens",
    ),
    "draft-other-bos": Case(
        ["ask", "{tiny}", "hi", "--speculate", "draft:{model:bos-2}"], 1, "BOS token 2 against 1"
    ),
    "draft-missing": Case(
        ["ask", "{tiny}", "hi", "--speculate", "draft:{tmp}/nope.gguf"], 1, "nope.gguf"
    ),
    "threads-100000": Case(["ask", "{tiny}", "hi", *GREEDY[:4], "--threads", "100000"], 0, ""),
    # 10: numbers
    "temperature-nan": Case(["ask", "{tiny}", "hi", "--temperature", "nan"], 2, "finite"),
    "temperature-inf": Case(["ask", "{tiny}", "hi", "--temperature", "inf"], 2, "finite"),
    "repeat-penalty-nan": Case(["ask", "{tiny}", "hi", "--repeat-penalty", "nan"], 2, "finite"),
    "rope-scale-nan": Case(["ask", "{tiny}", "hi", "--rope-scale", "nan"], 2, "finite"),
    # rough edges
    "missing-context-file": Case(["ask", "{tiny}", "q", "--context", "{tmp}/nope"], 1, "no such"),
    "missing-functions-file": Case(
        ["ask", "{tiny}", "q", "--functions", "{tmp}/nope"], 1, "no such functions file"
    ),
    "run-on-a-pipe": Case(["run", "{tiny}"], 2, "airochat ask", stdin="hi\n"),
    # issue 22: a chat is never lost, a cache fault is never fatal
    "session-lone-surrogate": Case(
        ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json"],
        1,
        "not valid Unicode",
        files={"s.json": "SESSION:system=\\udc80"},
    ),
    "message-not-utf8": Case(["ask", "{tiny}", "caf\udce9", *GREEDY], 2, "not UTF-8 text"),
    "session-negative-token-id": Case(
        ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json", *GREEDY],
        0,
        "",
        files={"s.json": "SESSION:turn=-1"},
        kept=False,
    ),
    **{
        f"session-cache-{name}": Case(
            ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json", *GREEDY],
            0,
            "",
            files={"s.json": "SESSION:turn=5", "s.json.kv": data},
            kept=False,
        )
        for name, data in {
            "garbage": b"\x00garbage",
            "huge-state": b'AIROCHAT-KV 2\n{"state_bytes": 1099511627776}\n',
            "float-state": b'AIROCHAT-KV 2\n{"state_bytes": 1e20}\n',
            "deep-header": b"AIROCHAT-KV 2\n" + b"[" * 200_000 + b"]" * 200_000 + b"\n",
        }.items()
    },
    # 12: the environment
    **{
        f"session-on-a-full-disk-{name}": Case(
            ["ask", "{tiny}", "hi", "--session", "{tmp}/s.json", *GREEDY],
            1,
            "the disk is full",
            files=files,
            full_disk=True,
        )
        for name, files in {"new": {}, "existing": {"s.json": "SESSION:turn=5"}}.items()
    },
    # refused before any connection (nothing listens on port 9), the key never shown
    **{
        f"api-key-{name}-{kind}": Case(
            ["ask", "hi", "--server", "http://127.0.0.1:9", *flags, "--api-key", key],
            2,
            "it is not shown here",
        )
        for name, key in {"non-ascii": "SÉCRET", "newline": "SECRET\nX-Evil: 1"}.items()
        for kind, flags in {"detected": [], "llama": ["--server-kind", "llama"]}.items()
    },
}


def _session_text(tweak: str) -> str:
    key, _, value = tweak.partition("=")
    if key == "system":  # raw JSON text for the system prompt (an escape such as \udc80)
        return _session_json([]).replace('"system": "S."', f'"system": "{value}"')
    if key == "turn":  # one exchange whose reply ids are [value]
        turn = {"message": "hello", "reply": "a chat", "finish_reason": "length"}
        return _session_json([{**turn, "reply_tokens": [int(value)]}])
    return _session_json([], {key: float(value) if value == "NaN" else value})


def _session_json(turns: list[dict[str, object]], sampling: dict[str, object] | None = None) -> str:
    data = {
        "schema": "airochat-session",
        "version": 2,
        "model": "tiny-llama.gguf",
        "template": "airoboros",
        "system": "S.",
        "history": True,
        "sampling": sampling or {},
        "turns": turns,
    }
    return json.dumps(data)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-models")
    return {name: write(root / f"{name}.gguf") for name, write in MODELS.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(
    name: str,
    tiny_gguf: Path,
    models: dict[str, Path],
    tmp_path: Path,
    isolated_dirs: Path,
    request: pytest.FixtureRequest,
) -> None:
    case = CASES[name]
    if case.full_disk:
        tmp_path = _small_tmpfs(tmp_path / "full", request)
    written: dict[Path, bytes] = {}
    for fname, content in case.files.items():
        if isinstance(content, str) and content.startswith("SESSION:"):
            content = _session_text(content[len("SESSION:") :])
        data = content.encode() if isinstance(content, str) else content
        (tmp_path / fname).write_bytes(data)
        written[tmp_path / fname] = data
    os.mkfifo(tmp_path / "fifo")
    if case.full_disk:
        _fill(tmp_path)
    config_dir = isolated_dirs / "config" / "airochat"
    for fname, kind in case.special.items():
        config_dir.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(config_dir / fname)
        else:
            (config_dir / fname).symlink_to("/dev/zero")
    for fname, text in (("config.toml", case.config), ("models.txt", case.catalog)):
        if text is not None:
            conf = isolated_dirs / "config" / "airochat" / fname
            conf.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode() if isinstance(text, str) else text
            conf.write_bytes(data)
            written[conf] = data
    args = [_expand(a, tiny_gguf, models, tmp_path) for a in case.args]
    start = time.monotonic()
    proc = run_cli(*args, stdin=case.stdin, timeout=60)
    elapsed = time.monotonic() - start
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == case.code, proc.stderr
    if case.code:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and case.says in lines[0], proc.stderr
        assert lines[0].startswith("airochat: error:")
        assert "SECRET" not in proc.stderr and "SÉCRET" not in proc.stderr
    for path, data in written.items():
        assert not case.kept or path.read_bytes() == data, f"{path} changed"
    assert elapsed < 30, f"took {elapsed:.1f} s"  # a hang guard, not a speed target
    if case.full_disk:
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*case.files, "fifo", "fill"])


def _small_tmpfs(where: Path, request: pytest.FixtureRequest) -> Path:
    """A real 64 KiB file system (mounting needs root), unmounted when the test ends."""
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(where)], check=False))
    return where


def _fill(directory: Path) -> None:
    # Unbuffered: the write that finds the disk full raises here, not again at close.
    with open(directory / "fill", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()


def _expand(arg: str, tiny: Path, models: dict[str, Path], tmp: Path) -> str:
    head, model, tail = arg.partition("{model:")  # also inside a value: draft:{model:NAME}
    if model:
        name, _, rest = tail.partition("}")
        arg = head + str(models[name]) + rest
    return arg.replace("{tiny}", str(tiny)).replace("{tmp}", str(tmp))
