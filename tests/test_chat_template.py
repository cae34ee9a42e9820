"""A model's own jinja chat template: derived formats, sandboxing, and use end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airochat.domain.chat_template import ChatTemplateError, template_from_gguf
from airochat.domain.templates import get_template, render
from tests.conftest import run_cli
from tests.tiny_model import write_tiny_llama

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Gemma-like: no system role; turns in <start_of_turn>; BOS written by the template.
NO_SYSTEM = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<start_of_turn>' + m['role'] + '\\n' + m['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
# CVE-2024-34359 pattern: reach os through Python internals and write a file.
MALICIOUS = (
    "{% for x in ().__class__.__base__.__subclasses__() %}"
    "{% if 'warning' in x.__name__ %}{{ x()._module.__builtins__['__import__']('os')"
    ".popen('touch {marker}').read() }}{% endif %}{% endfor %}"
)


def test_chatml_jinja_renders_like_the_builtin_chatml() -> None:
    derived = template_from_gguf(CHATML, "<s>", "<|im_end|>", ("<|im_end|>",))
    builtin = get_template("chatml")
    assert render(derived.first_turn("SYS", "Hi {x}")) == render(
        builtin.first_turn("SYS", "Hi {x}")
    )
    assert render(derived.next_turn("Again")) == render(builtin.next_turn("Again"))
    assert render(derived.end_of_reply()) == render(builtin.end_of_reply())
    assert derived.stop == ("<|im_end|>",)


def test_template_without_system_role() -> None:
    derived = template_from_gguf(NO_SYSTEM, "<bos>", "<eos>", ("<end_of_turn>",))
    assert render(derived.first_turn("", "Hi")) == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    )
    assert render(derived.end_of_reply()) == "<end_of_turn>\n"


def test_malicious_template_is_refused_and_leaves_no_trace(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ChatTemplateError, match="Python internals"):
        template_from_gguf(MALICIOUS.replace("{marker}", str(marker)), "<s>", "</s>", ())
    assert not marker.exists()


def test_malicious_template_end_to_end(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = write_tiny_llama(
        tmp_path / "evil.gguf", chat_template=MALICIOUS.replace("{marker}", str(marker))
    )
    proc = run_cli("ask", str(model), "hi", "--max-tokens", "2")
    assert proc.returncode == 1 and "Python internals" in proc.stderr  # a file problem: 1
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_gguf_template_chosen_and_markers_are_special_tokens(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "chatml-tiny.gguf", chat_template=CHATML)
    proc = run_cli("ask", str(model), "hello", "--print-prompt", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["template"] == "gguf"
    assert out["prompt"] == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert "</s>" in out["stop"]  # the model's EOS text ends a turn too

    from airochat.adapters.llama_engine import LlamaEngine, LoadOptions

    engine = LlamaEngine.load(LoadOptions(path=model, n_ctx=128, n_threads=1))
    try:
        from airochat.domain.chat_template import template_from_gguf as derive
        from airochat.domain.templates import encode

        tpl = derive(CHATML, "<s>", "</s>", ("</s>",))
        ids = encode(tpl.first_turn("", "hello"), engine)
        start = engine._llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
        assert len(start) == 1 and ids.count(start[0]) == 2  # one token each, not text
        # typed by the user, the same spelling stays text
        assert encode(tpl.first_turn("", "<|im_start|>"), engine).count(start[0]) == 2
    finally:
        engine.close()


def test_gguf_template_on_model_without_one(tiny_gguf: Path) -> None:
    proc = run_cli("ask", str(tiny_gguf), "hi", "--template", "gguf", "--max-tokens", "1")
    assert proc.returncode == 2 and "no chat template of its own" in proc.stderr


@pytest.mark.parametrize("in_thread", [False, True])
def test_a_template_that_loops_without_output_is_refused_in_any_thread(in_thread: bool) -> None:
    """The budget counts the render's steps (no SIGALRM), so it holds outside the main thread
    too, where a timer signal could never reach."""
    import threading

    loops = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    caught: list[BaseException] = []

    def render() -> None:
        try:
            template_from_gguf(loops, "<s>", "</s>", ())
        except ChatTemplateError as exc:
            caught.append(exc)

    if in_thread:
        worker = threading.Thread(target=render)
        worker.start()
        worker.join(timeout=60)
    else:
        render()
    assert len(caught) == 1 and "refusing it" in str(caught[0])
