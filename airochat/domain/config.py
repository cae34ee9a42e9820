"""Settings: the shipped defaults, the user's config.toml over them, command-line options on top."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

from airochat.domain.lookup_draft import check_mode
from airochat.errors import ConfigError

# KV cache types llama.cpp offers that are worth their trade: bytes per element, for planning.
KV_TYPES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.5
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    max_tokens: int = 2048
    seed: int = -1

    def validate(self) -> None:
        _check_types(self)
        if self.temperature < 0:
            raise ConfigError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ConfigError("top_k must be >= 0 (0 disables it)")
        if not 0 <= self.min_p <= 1:
            raise ConfigError("min_p must be in [0, 1]")
        if self.repeat_penalty <= 0:
            raise ConfigError("repeat_penalty must be > 0")
        if self.max_tokens < 1:
            raise ConfigError("max_tokens must be >= 1")


@dataclass(frozen=True)
class Settings:
    model: str = "smollm2"
    template: str = ""
    system: str = ""
    ctx: int = 0
    threads: int = 0
    history: bool = True
    gpu_layers: str = "auto"
    rope_scale: float = 0.0
    rope_freq_base: float = 0.0
    mmap: bool = True
    mlock: bool = False
    kv_type: str = "f16"
    # off, lookup, auto or draft:MODEL (domain/lookup_draft.py); auto drafts only where its
    # measured timings say drafts pay, so it is never measurably slower than off
    speculate: str = "auto"
    engine: str = "local"  # local, or llama-server (started by airochat)
    server: str = ""  # a running server's URL (llama-server or OpenAI-compatible)
    llama_server: str = ""  # the llama-server binary for engine = llama-server
    server_timeout: float = 60.0  # seconds a server may stay silent (x10 for a reply's start)
    input_history: bool = True
    markdown: bool = True
    show_stats: bool = True
    session_cache: bool = True
    session_cache_max_mb: int = 2048
    keep_chats: bool = True  # every chat in the chat library (`airochat chats`)
    chat_cache_max_mb: int = 4096  # the library chats' KV caches, all together
    tools: str = ""  # tools.yaml for reWOO plans (ask --plan, /plan); "" = the built-ins only
    sampling: Sampling = field(default_factory=Sampling)

    def validate(self) -> None:
        _check_types(self)
        if self.ctx < 0:
            raise ConfigError("ctx must be >= 0 (0 = the model's own)")
        if self.threads < 0:
            raise ConfigError("threads must be >= 0 (0 = physical cores)")
        if self.rope_scale < 0 or self.rope_freq_base < 0:
            raise ConfigError("rope_scale and rope_freq_base must be >= 0 (0 = the model's)")
        if self.kv_type not in KV_TYPES:
            raise ConfigError(f"kv_type is one of {', '.join(KV_TYPES)}, not {self.kv_type!r}")
        spec_error = check_mode(self.speculate)
        if spec_error:
            raise ConfigError(spec_error.replace("--speculate", "speculate"))
        if self.engine not in ("local", "llama-server"):
            raise ConfigError(f"engine is local or llama-server, not {self.engine!r}")
        if not 0 < self.server_timeout <= 86400:
            raise ConfigError("server_timeout is seconds, more than 0 and at most 86400")
        if self.session_cache_max_mb < 0 or self.chat_cache_max_mb < 0:
            raise ConfigError("session_cache_max_mb and chat_cache_max_mb must be >= 0")
        g = self.gpu_layers.strip().lower()
        if not (g in ("auto", "all") or g.isdigit()):
            raise ConfigError(f"gpu_layers takes a number, auto or all, not {self.gpu_layers!r}")
        self.sampling.validate()

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply non-None overrides; sampling keys go to `sampling`."""
        sampling_keys = {f.name for f in fields(Sampling)}
        top = {k: v for k, v in overrides.items() if v is not None and k not in sampling_keys}
        samp = {k: v for k, v in overrides.items() if v is not None and k in sampling_keys}
        out = replace(self, **top, sampling=replace(self.sampling, **samp))
        out.validate()
        return out


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():  # a FIFO would block the start for ever, /dev/zero never end
        raise ConfigError(f"{path}: not a regular file")
    try:
        with path.open("rb") as fh:
            data = fh.read(1 << 20)
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses once per level of [ or {
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def _apply(base: Settings, data: dict[str, Any], source: Path) -> Settings:
    top_names = {f.name for f in fields(Settings)} - {"sampling"}
    samp_names = {f.name for f in fields(Sampling)}
    sampling = data.pop("sampling", {})
    unknown = [k for k in data if k not in top_names]
    if not isinstance(sampling, dict):
        unknown.append("sampling")
    else:
        unknown += [f"sampling.{k}" for k in sampling if k not in samp_names]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}")
    try:
        out = replace(base, **data, sampling=replace(base.sampling, **sampling))
        out.validate()
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return out


def _check_types(obj: Settings | Sampling) -> None:
    """Every field has its default's type (an int where a float goes is fine), and no
    number is NaN or infinite: llama.cpp would take them and answer garbage."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Sampling):
            continue
        expected = type(getattr(type(obj)(), f.name))
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if expected is not bool and isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(f"{f.name} should be {expected.__name__}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name} must be a finite number, not {value!r}")


def sampling_from(base: Sampling, values: dict[str, Any]) -> Sampling:
    """`base` with `values` (known keys only) applied, checked: types, ranges, finite."""
    known = {k: v for k, v in values.items() if k in {f.name for f in fields(Sampling)}}
    out = replace(base, **known)
    out.validate()
    return out


def load_settings(defaults: Path, user: Path | None) -> Settings:
    """Shipped defaults, then the user's file if it exists."""
    settings = _apply(Settings(), _read_toml(defaults), defaults)
    if user is not None and user.exists():
        settings = _apply(settings, _read_toml(user), user)
    try:
        settings.validate()
    except ConfigError as exc:
        raise ConfigError(f"{user or defaults}: {exc}") from None
    return settings
