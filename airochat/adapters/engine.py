"""llama-cpp-python behind a small interface: load a GGUF, tokenize, stream a reply as events.

`generate` hands llama-cpp-python the whole token history each turn; its longest-prefix match
against the KV cache means only the new tokens are read. llama.cpp's own perf counters tell how
many prompt tokens were actually evaluated, so tests and `/stats` report observation, not belief.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airochat.errors import ContextOverflowError, ModelLoadError

if TYPE_CHECKING:
    from llama_cpp import Llama


@dataclass(frozen=True)
class LoadOptions:
    path: Path
    n_ctx: int
    n_threads: int
    n_gpu_layers: int = 0
    seed: int = -1
    rope_freq_scale: float = 0.0  # 0: take it from the model
    rope_freq_base: float = 0.0
    use_mmap: bool = True
    use_mlock: bool = False
    verbose: bool = False
    vocab_only: bool = False  # tokenizer only: for --print-prompt


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    max_tokens: int
    seed: int = -1


@dataclass(frozen=True)
class TextChunk:
    """Reply text that can no longer change (stop strings already ruled out)."""

    text: str


@dataclass(frozen=True)
class Done:
    """The end of a reply. `finish_reason`: stop (EOS or stop string), length, interrupted."""

    finish_reason: str
    text: str
    tokens: list[int]
    prompt_tokens: int
    prompt_eval_tokens: int
    ttft_s: float
    decode_s: float
    generated: int

    @property
    def tokens_per_s(self) -> float:
        # The first token's time belongs to the prompt read; decode speed is over the rest.
        return (self.generated - 1) / self.decode_s if self.generated > 1 and self.decode_s else 0.0


Event = TextChunk | Done


class _LogTail:
    """Keeps llama.cpp's last log lines so a load failure can say what llama.cpp said."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=40)
        self.echo = False
        self._partial = ""

    def __call__(self, level: int, text: bytes, _user: Any) -> None:
        s = text.decode("utf-8", errors="replace")
        if self.echo:
            import sys

            sys.stderr.write(s)
        self._partial += s
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            if line.strip():
                self.lines.append(line.strip())

    def reason(self) -> str:
        for line in reversed(self.lines):
            low = line.lower()
            if "error" in low or "failed" in low or "invalid" in low:
                return line
        return self.lines[-1] if self.lines else ""


_LOG = _LogTail()
_log_installed: Any = None


def _install_log() -> None:
    global _log_installed
    if _log_installed is None:
        import llama_cpp

        _log_installed = llama_cpp.llama_log_callback(_LOG)
        llama_cpp.llama_log_set(_log_installed, ctypes.c_void_p(0))


class LlamaEngine:
    """One loaded model and its context."""

    def __init__(self, llm: Llama, options: LoadOptions, load_s: float) -> None:
        import llama_cpp

        self._llm = llm
        self.options = options
        self.load_s = load_s
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self._pieces: dict[int, bytes] = {}
        self._stop_flag = threading.Event()
        # Kept referenced: llama.cpp holds the pointer.
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._stop_flag.is_set())
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL
        self._ctx = None if options.vocab_only else llm._ctx.ctx

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, options: LoadOptions) -> LlamaEngine:
        _install_log()
        _LOG.echo = options.verbose
        _LOG.lines.clear()
        from llama_cpp import Llama

        start = time.perf_counter()
        try:
            llm = Llama(
                model_path=str(options.path),
                n_ctx=options.n_ctx,
                n_threads=options.n_threads,
                n_threads_batch=options.n_threads,
                n_gpu_layers=options.n_gpu_layers,
                seed=options.seed if options.seed >= 0 else 0xFFFFFFFF,
                rope_freq_scale=options.rope_freq_scale,
                rope_freq_base=options.rope_freq_base,
                use_mmap=options.use_mmap,
                use_mlock=options.use_mlock,
                vocab_only=options.vocab_only,
                verbose=options.verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = _LOG.reason() or str(exc)
            raise ModelLoadError(f"llama.cpp could not load {options.path.name}: {reason}") from exc
        return cls(llm, options, time.perf_counter() - start)

    def close(self) -> None:
        self._llm.close()

    @property
    def llama(self) -> Llama:
        """The underlying llama_cpp.Llama (for bench's bare baseline)."""
        return self._llm

    def decoded_tokens(self, reset: bool = False) -> int:
        """Single-token decode steps llama.cpp counted since the last reset."""
        if reset:
            self._lib.llama_perf_context_reset(self._ctx)
        return int(self._lib.llama_perf_context(self._ctx).n_eval)

    def forget_cache(self) -> None:
        """Make the next prompt read from scratch (no KV prefix reuse)."""
        self._llm.reset()  # type: ignore[no-untyped-call]

    # -- model facts ---------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    @property
    def n_ctx_train(self) -> int:
        return int(self._llm._model.n_ctx_train())

    @property
    def eos_id(self) -> int:
        return int(self._llm.token_eos())

    @property
    def bos_id(self) -> int:
        return int(self._llm.token_bos())

    def metadata(self) -> dict[str, str]:
        return dict(self._llm.metadata)

    # -- tokens ----------------------------------------------------------------------------------

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text: special-token spellings in it stay text."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def special_token(self, special: Any) -> list[int]:
        name = special.name
        if name == "bos":
            add_bos = self._lib.llama_vocab_get_add_bos(self._vocab)
            return [self.bos_id] if add_bos and self.bos_id >= 0 else []
        if name == "eos":
            return [self.eos_id]
        ids = list(self._llm.tokenize(name.encode("utf-8"), add_bos=False, special=True))
        # A marker the vocabulary has no single token for is ordinary text.
        return ids if len(ids) == 1 else self.tokenize_text(name)

    def token_text(self, token: int) -> str:
        """A token's text with special tokens spelled out (`<bos>`, `<|im_end|>`)."""
        buf = ctypes.create_string_buffer(256)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, 256, 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def eog_texts(self) -> tuple[str, ...]:
        """Texts of the end-of-generation tokens other than EOS (e.g. `<end_of_turn>`)."""
        n_vocab = self._lib.llama_vocab_n_tokens(self._vocab)
        out = []
        for tok in range(n_vocab):
            if tok != self.eos_id and self.is_eog(tok):
                out.append(self.token_text(tok))
        return tuple(t for t in out if t)

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(256)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, 256, 0, False)
            cached = buf.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # -- generation ------------------------------------------------------------------------------

    def _abort_hook(self, armed: bool) -> None:
        """llama.cpp calls the hook once per graph node (~450 times a token for the demo model):
        worth it while a long prompt is read in one llama_decode, not for single-token steps,
        where the per-token check below stops within one token."""
        cb = self._abort_cb if armed else self._no_abort_cb
        self._lib.llama_set_abort_callback(self._ctx, cb, None)

    def request_stop(self) -> None:
        """Stop the prompt read or reply as soon as possible (safe in a signal handler)."""
        self._stop_flag.set()

    def generate(
        self, prompt: Sequence[int], params: SamplingParams, stop: Sequence[str] = ()
    ) -> Iterator[Event]:
        """Stream a reply to `prompt` (the full token history) as TextChunks, then one Done."""
        n_prompt = len(prompt)
        if n_prompt >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n_prompt} tokens but the context holds {self.n_ctx}"
            )
        budget = min(params.max_tokens, self.n_ctx - n_prompt)
        if params.seed >= 0:
            self._llm.set_seed(params.seed)
        self._stop_flag.clear()
        self._lib.llama_perf_context_reset(self._ctx)
        run = _ReplyRun(self, stop)
        start = time.perf_counter()
        first_at = last_at = start
        finish = "length"
        received = 0
        self._abort_hook(True)
        gen = self._llm.generate(
            list(prompt),
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
        )
        try:
            for token in gen:
                last_at = time.perf_counter()
                received += 1
                if received == 1:
                    first_at = last_at
                    self._abort_hook(False)
                if self.is_eog(token):
                    finish = "stop"
                    break
                chunk = run.add(token)
                if chunk:
                    yield TextChunk(chunk)
                if run.stopped:
                    finish = "stop"
                    break
                if len(run.tokens) >= budget:
                    break
                if self._stop_flag.is_set():
                    finish = "interrupted"
                    break
        except RuntimeError:
            # llama_decode returns 2 when our abort callback fired mid-prompt.
            if not self._stop_flag.is_set():
                raise
            finish = "interrupted"
        except KeyboardInterrupt:
            finish = "interrupted"
        finally:
            gen.close()
            self._abort_hook(False)
        tail = run.flush()
        if tail:
            yield TextChunk(tail)
        yield Done(
            finish_reason=finish,
            text=run.text,
            tokens=list(run.tokens),
            prompt_tokens=n_prompt,
            prompt_eval_tokens=self._prompt_evaluated(received),
            ttft_s=(first_at - start) if received else (last_at - start),
            decode_s=last_at - first_at,
            generated=received,
        )

    def _prompt_evaluated(self, received: int) -> int:
        """Prompt tokens llama.cpp decoded this turn: all decoded tokens less the generated ones
        fed back (every received token but the last is evaluated before the next is sampled)."""
        data = self._lib.llama_perf_context(self._ctx)
        return int(data.n_p_eval + data.n_eval) - max(received - 1, 0)


@dataclass
class _ReplyRun:
    """Turns generated tokens into text, holding back anything that may begin a stop string.

    When a stop string appears, the reply keeps only the tokens wholly before it: the text and
    the token ids stay the same thing, and the stop text never enters the history."""

    engine: LlamaEngine
    stop: Sequence[str]
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    stopped: bool = False
    _ends: list[int] = field(default_factory=list)  # text length after each token
    _decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def add(self, token: int) -> str:
        self.tokens.append(token)
        self.text += self._decoder.decode(self.engine.piece(token))
        self._ends.append(len(self.text))
        if self.stop:
            cut = self._find_stop()
            if cut is not None:
                self._truncate(cut)
                self.stopped = True
                return self._emit(len(self.text))
            return self._emit(self._token_start(len(self.text) - self._held_back()))
        return self._emit(len(self.text))

    def _find_stop(self) -> int | None:
        window = max(len(s) for s in self.stop) + 8
        start = max(0, self.emitted - window)
        hits = [i for s in self.stop if (i := self.text.find(s, start)) >= 0]
        return min(hits) if hits else None

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a prefix of some stop string."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        return best

    def _token_start(self, index: int) -> int:
        """Where the token holding text position `index` begins: a token that may be cut
        with a stop string is held back whole, so the screen never shows what is dropped."""
        start = 0
        for end in self._ends:
            if end > index:
                return start
            start = end
        return index

    def _truncate(self, cut: int) -> None:
        keep = 0
        while keep < len(self._ends) and self._ends[keep] <= cut:
            keep += 1
        self.tokens = self.tokens[:keep]
        self._ends = self._ends[:keep]
        self.text = self.text[: self._ends[-1]] if self._ends else ""

    def _emit(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        out = self.text[self.emitted : upto]
        self.emitted = upto
        return out

    def flush(self) -> str:
        return self._emit(len(self.text))
