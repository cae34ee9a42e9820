"""The llama-cpp-python engine on a real (tiny, generated) GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from airochat.adapters.llama_engine import LlamaEngine, LoadOptions
from airochat.domain.config import Sampling
from airochat.domain.events import Done, TextChunk
from airochat.domain.stops import ReplyText
from airochat.domain.templates import BOS, EOS, get_template, render
from airochat.domain.templates import encode as encode_segments
from airochat.errors import ContextOverflowError, ModelLoadError

GREEDY = Sampling(
    temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0, max_tokens=8, seed=1
)


def test_tiny_model_facts(tiny_engine: LlamaEngine) -> None:
    assert tiny_engine.n_ctx == 512
    assert tiny_engine.bos_id == 1 and tiny_engine.eos_id == 2
    assert tiny_engine.special_token(BOS) == [1]
    assert tiny_engine.special_token(EOS) == [2]
    assert tiny_engine.is_eog(2)


def test_segment_tokens_match_llama_cpp_tokenizing_the_whole_string(
    tiny_engine: LlamaEngine,
) -> None:
    """Tokenizing turn by turn gives what llama.cpp gives for the rendered chat with </s> special:
    the history we keep is what a one-shot tokenization of the transcript would be."""
    tpl = get_template("airoboros")
    # (a reply is kept as the ids the model generated, so it is left out here)
    segs = [*tpl.first_turn("A chat.", "hello world"), EOS, *tpl.next_turn("what is")]
    ours = encode_segments(segs, tiny_engine)
    text = render(segs)
    theirs = tiny_engine._llm.tokenize(text.encode(), add_bos=True, special=True)
    assert ours == list(theirs)


def test_user_text_spelling_eos_is_not_the_eos_token(tiny_engine: LlamaEngine) -> None:
    assert tiny_engine.eos_id not in tiny_engine.tokenize_text("a</s>b")


def test_generate_streams_then_done(tiny_engine: LlamaEngine) -> None:
    prompt = tiny_engine.tokenize_text("hello world")
    events = list(tiny_engine.generate([1, *prompt], GREEDY))
    chunks = [e for e in events if isinstance(e, TextChunk)]
    done = events[-1]
    assert isinstance(done, Done)
    assert "".join(c.text for c in chunks) == done.text
    assert done.finish_reason in ("length", "stop")
    assert done.generated >= len(done.tokens)
    assert done.prompt_tokens == len(prompt) + 1


def test_same_seed_same_reply(tiny_engine: LlamaEngine) -> None:
    params = Sampling(0.8, 1.0, 0, 0.0, 1.0, 12, seed=7)
    prompt = [1, *tiny_engine.tokenize_text("The capital")]
    a = list(tiny_engine.generate(prompt, params))[-1]
    b = list(tiny_engine.generate(prompt, params))[-1]
    assert isinstance(a, Done) and isinstance(b, Done)
    assert a.tokens == b.tokens


def test_prompt_larger_than_context_is_a_clear_error(tiny_engine: LlamaEngine) -> None:
    with pytest.raises(ContextOverflowError, match="context holds 512"):
        list(tiny_engine.generate([1] * 600, GREEDY))


def feed(engine: LlamaEngine, text: str, stop: list[str]) -> tuple[ReplyText, str]:
    run = ReplyText(engine, stop)
    shown = ""
    for tok in engine.tokenize_text(text):
        shown += run.add(tok)
        if run.stopped:
            break
    return run, shown + run.flush()


def test_stop_string_is_cut_with_its_tokens(tiny_engine: LlamaEngine) -> None:
    run, shown = feed(tiny_engine, "hello world USER: what", ["USER:"])
    assert run.stopped
    assert shown == run.text
    assert "USER" not in run.text and run.text.lstrip() == "hello world"
    # the kept tokens are exactly the kept text
    assert tiny_engine.detokenize(run.tokens).lstrip() == run.text.lstrip()


def test_text_that_may_begin_a_stop_string_is_held_back(tiny_engine: LlamaEngine) -> None:
    run = ReplyText(tiny_engine, ["USER:"])
    shown = "".join(run.add(t) for t in tiny_engine.tokenize_text("hello US"))
    assert not shown.endswith("US")  # might still become USER:
    assert run.flush().endswith("US")  # released once the reply ends


def test_not_a_gguf_is_refused_with_llama_cpp_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 8 + b"\xff" * 8)
    with pytest.raises(ModelLoadError, match=r"could not load bad\.gguf"):
        LlamaEngine.load(LoadOptions(path=bad, n_ctx=64, n_threads=1))


def _shifted_and_cold_logits(path: Path) -> tuple[object, object]:
    """The next-token logits for the same fitted chat, once from a cache whose oldest exchange
    was dropped and the rest shifted, once read cold."""
    import llama_cpp
    import numpy as np

    def last_logits(engine: LlamaEngine) -> object:
        ptr = llama_cpp.llama_get_logits_ith(engine.llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(engine.n_vocab,)).copy()

    shifted = LlamaEngine.load(LoadOptions(path=path, n_ctx=512, n_threads=1))
    cold = LlamaEngine.load(LoadOptions(path=path, n_ctx=512, n_threads=1))
    try:
        tok = shifted.tokenize_text
        head = [1, *tok("A chat.")]
        dropped = [*tok(" USER: what is the capital ASSISTANT: hello world"), 2]
        kept = [*tok(" USER: and the world ASSISTANT: the capital of"), 2]
        new = tok(" USER: what ASSISTANT:")
        shifted.llama.eval(head + dropped + kept)
        assert shifted.drop_cached(len(head), len(head) + len(dropped))
        shifted.llama.eval(new)
        cold.llama.eval(head + kept + new)
        return last_logits(shifted), last_logits(cold)
    finally:
        shifted.close()
        cold.close()


def test_a_shifted_cache_answers_as_a_cold_read(tmp_path: Path) -> None:
    """One layer: a cached key or value depends only on its token and its position, and a
    shift re-rotates the keys to their new positions -- the logits equal a cold read up to
    the f16 cache's rounding. Two layers: the kept cells were computed while attending to the
    dropped tokens (the known cost of shifting instead of re-reading), so the logits differ
    by more; measured here, and the greedy choice is compared."""
    import numpy as np

    from tests.tiny_model import write_tiny_llama

    one = _shifted_and_cold_logits(write_tiny_llama(tmp_path / "one.gguf", n_layer=1))
    two = _shifted_and_cold_logits(write_tiny_llama(tmp_path / "two.gguf", n_layer=2))
    d1 = float(np.max(np.abs(np.subtract(*one))))  # type: ignore[call-overload]
    d2 = float(np.max(np.abs(np.subtract(*two))))  # type: ignore[call-overload]
    print(f"max |logit difference| after a shift: 1 layer {d1:.2e}, 2 layers {d2:.2e}")
    assert d1 < 2e-2 and np.argmax(one[0]) == np.argmax(one[1])
    assert d2 > d1
