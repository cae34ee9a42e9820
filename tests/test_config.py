from __future__ import annotations

from pathlib import Path

import pytest

from airochat.adapters.locations import data_file
from airochat.domain.config import Settings, load_settings
from airochat.errors import ConfigError

DEFAULTS = data_file("configs/default.toml")


def test_shipped_defaults_follow_the_airoboros_cards() -> None:
    s = load_settings(DEFAULTS, None)
    assert s.sampling.temperature == 0.5
    assert s.sampling.max_tokens == 2048
    assert s.model == "smollm2"
    assert s.history is True


def test_user_file_overrides_and_cli_wins(tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('model = "x.gguf"\n[sampling]\ntemperature = 0.9\n')
    s = load_settings(DEFAULTS, user)
    assert (s.model, s.sampling.temperature, s.sampling.max_tokens) == ("x.gguf", 0.9, 2048)
    s2 = s.with_overrides(temperature=0.1, ctx=None)
    assert s2.sampling.temperature == 0.1 and s2.ctx == s.ctx


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modle = 'x'", "unknown key 'modle'"),
        ("[sampling]\ntemprature = 1", "unknown key 'sampling.temprature'"),
        ("ctx = 'big'", "ctx should be int"),
        ("[sampling]\ntop_p = 3.0", "top_p must be in"),
        ("ctx = [", "not valid TOML"),
    ],
)
def test_bad_user_config_is_named(tmp_path: Path, text: str, message: str) -> None:
    user = tmp_path / "config.toml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(DEFAULTS, user)


def test_bad_override_rejected() -> None:
    with pytest.raises(ConfigError, match="max_tokens"):
        Settings().with_overrides(max_tokens=0)
