"""llama-cpp-python behind the `Engine` protocol: load a GGUF, tokenize, stream a reply as events.

`generate` hands llama-cpp-python the whole token history each turn; its longest-prefix match
against the KV cache means only the new tokens are read. llama.cpp's own perf counters tell how
many prompt tokens were actually evaluated, so tests and `/stats` report observation, not belief.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airochat.adapters import llama_log
from airochat.adapters.llama_speculative import LookupSpeculator
from airochat.adapters.reply_clock import ReplyClock
from airochat.domain.config import Sampling
from airochat.domain.engine import Capabilities, Dropped
from airochat.domain.events import Done, EngineEvent, FinishReason, TextChunk
from airochat.domain.load_options import LoadOptions
from airochat.domain.stops import ReplyText
from airochat.domain.templates import Special
from airochat.errors import AirochatError, ContextOverflowError, LoadInterrupted, ModelLoadError


class GenerationError(AirochatError):
    """llama.cpp failed mid-reply; the chat is kept as it was before the turn."""


class ContextAllocError(ModelLoadError):
    """The weights loaded but llama.cpp could not allocate the context (KV cache, buffers)."""


if TYPE_CHECKING:
    from llama_cpp import Llama


class LlamaEngine:
    """One loaded model and its context: the in-process `Engine`."""

    def __init__(self, llm: Llama, options: LoadOptions, load_s: float) -> None:
        import llama_cpp

        self._llm = llm
        self.options = options
        self.load_s = load_s
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self._pieces: dict[int, bytes] = {}
        self._max_token_bytes: int | None = None
        self._stop_flag = threading.Event()
        # Kept referenced: llama.cpp holds the pointer.
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._stop_flag.is_set())
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL
        self._ctx = None if options.vocab_only else llm._ctx.ctx
        self.speculator: LookupSpeculator | None = None  # --speculate: drafts verified in batches

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, options: LoadOptions) -> LlamaEngine:
        llama_log.install()
        llama_log.LOG.echo = options.verbose
        llama_log.LOG.lines.clear()
        from llama_cpp import Llama

        start = time.perf_counter()

        def construct() -> Llama:
            with _no_chat_handlers(), weights_without_amx():
                return Llama(
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
                    **_kv_params(options.kv_type),
                )

        try:
            llm = _interruptible(construct)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = llama_log.LOG.reason() or str(exc)
            if "llama_context" in str(exc):
                raise ContextAllocError(
                    f"llama.cpp could not create a {options.n_ctx}-token context: {reason}"
                ) from exc
            raise ModelLoadError(f"llama.cpp could not load {options.path.name}: {reason}") from exc
        return cls(llm, options, time.perf_counter() - start)

    def close(self) -> None:
        if self.speculator is not None:
            self.speculator.close()  # a draft model
        self._llm.close()

    @property
    def threads(self) -> int:
        return self.options.n_threads

    @property
    def llama(self) -> Llama:
        """The underlying llama_cpp.Llama (for bench's bare baseline)."""
        return self._llm

    def decoded_tokens(self, reset: bool = False) -> int:
        """Single-token decode steps llama.cpp counted since the last reset."""
        if reset:
            self._lib.llama_perf_context_reset(self._ctx)
        return int(self._lib.llama_perf_context(self._ctx).n_eval)

    def read_cold(self, tokens: Sequence[int]) -> float:
        """Read `tokens` with nothing cached; the seconds it took (for bench)."""
        self.forget_cache()
        start = time.perf_counter()
        try:
            self._llm.eval(list(tokens))
        except RuntimeError as exc:
            raise GenerationError(f"llama.cpp could not read {len(tokens)} tokens: {exc}") from None
        return time.perf_counter() - start

    def bare_chat_tps(
        self, turns: list[str], reply_end: str, sampling: Sampling, stop: list[str], n: int
    ) -> float:
        """The scripted chat as one growing text through llama-cpp-python's own streaming
        completion API: decode tokens/s, counted by llama.cpp, over the turns that fit."""
        llm = self._llm
        transcript, decoded, seconds = "", 0, 0.0
        self.forget_cache()
        for turn in turns:
            transcript += turn
            if len(llm.tokenize(transcript.encode())) + n >= self.n_ctx:
                break  # a plain completion cannot drop old turns: measure what fits
            first = last = 0.0
            reply = ""
            self.decoded_tokens(reset=True)
            stream = llm.create_completion(
                transcript,
                max_tokens=n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
                min_p=sampling.min_p,
                repeat_penalty=sampling.repeat_penalty,
                seed=max(sampling.seed, 0),
                stop=stop,
                stream=True,
            )
            for chunk in stream:
                last = time.perf_counter()
                first = first or last
                reply += chunk["choices"][0]["text"]  # type: ignore[index]
            if first and last > first:
                # Chunks are not tokens (text near a stop string is held back): llama.cpp counts.
                decoded += self.decoded_tokens()
                seconds += last - first
            transcript += reply + reply_end
        return decoded / seconds if seconds else 0.0

    def bare_tps(self, prompt: Sequence[int], sampling: Sampling) -> tuple[int, float]:
        """Continue `prompt` with llama-cpp-python's generate() alone, stopping only at EOG
        or the limit: (tokens, decode tokens/s)."""
        self._llm.set_seed(sampling.seed)
        clock = ReplyClock()
        tokens = self._llm.generate(list(prompt), **_sampler(sampling))
        try:
            for token in tokens:
                clock.tick()
                if clock.received >= sampling.max_tokens or self.is_eog(token):
                    break
        except RuntimeError as exc:
            raise GenerationError(f"llama.cpp failed while generating: {exc}") from None
        finally:
            tokens.close()
        return clock.received, clock.tokens_per_s

    def forget_cache(self) -> None:
        """Make the next prompt read from scratch (no KV prefix reuse)."""
        self._llm.reset()  # type: ignore[no-untyped-call]

    # -- model facts ---------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        # llama.cpp may pad the context (e.g. 80 -> 256), but llama-cpp-python sizes its token
        # buffer by the size requested: the smaller one is what we can use.
        return min(int(self._llm.n_ctx()), len(self._llm.input_ids))

    @property
    def n_vocab(self) -> int:
        return int(self._lib.llama_vocab_n_tokens(self._vocab))

    @property
    def max_token_bytes(self) -> int:
        if self._max_token_bytes is None:  # one pass over the vocabulary, only when needed
            get = self._lib.llama_vocab_get_text
            longest = max((len(get(self._vocab, t) or b"") for t in range(self.n_vocab)), default=1)
            self._max_token_bytes = max(longest, 1)
        return self._max_token_bytes

    @property
    def eos_id(self) -> int:
        return int(self._llm.token_eos())

    @property
    def bos_id(self) -> int:
        return int(self._llm.token_bos())

    # -- tokens ----------------------------------------------------------------------------------

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text: special-token spellings in it stay text."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def special_token(self, special: Special) -> list[int]:
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
        return self._to_piece(token, special=True).decode("utf-8", errors="replace")

    def eog_texts(self) -> tuple[str, ...]:
        """Texts of the end-of-generation tokens other than EOS (e.g. `<end_of_turn>`)."""
        eos, is_eog = self.eos_id, self._lib.llama_vocab_is_eog
        eog = [t for t in range(self.n_vocab) if t != eos and is_eog(self._vocab, t)]
        return tuple(text for text in map(self.token_text, eog) if text)

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            cached = self._pieces[token] = self._to_piece(token, special=False)
        return cached

    def _to_piece(self, token: int, special: bool) -> bytes:
        # llama-cpp-python's own token_to_piece returns the NUL-padded buffer.
        buf = ctypes.create_string_buffer(256)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, 256, 0, special)
        return buf.raw[: max(n, 0)]

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

    # -- the KV cache ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(can_shift=self._can_shift(), keeps_cache=True, exact_token_ids=True)

    def _can_shift(self) -> bool:
        """Whether llama.cpp can move cached positions (not for some recurrent models)."""
        if self._ctx is None:  # the tokenizer alone (--print-prompt)
            return False
        mem = self._lib.llama_get_memory(self._ctx)
        return bool(mem) and bool(self._lib.llama_memory_can_shift(mem))

    def drop_cached(self, start: int, end: int) -> Dropped:
        """Forget cached positions [start, end) and shift the later cells back by end - start
        (llama.cpp re-rotates their keys), keeping llama-cpp-python's record of the cached
        tokens in step so its prefix match sees the shifted cache."""
        llm = self._llm
        cached = llm.n_tokens
        if not 0 <= start < end <= cached or not self._can_shift():
            return Dropped.NOT_HELD
        mem = self._lib.llama_get_memory(self._ctx)
        if not self._lib.llama_memory_seq_rm(mem, 0, start, end):
            return Dropped.NOT_HELD
        self._lib.llama_memory_seq_add(mem, 0, end, -1, start - end)
        kept = llm.input_ids[end:cached].copy()
        llm.input_ids[start : start + len(kept)] = kept
        llm.n_tokens = cached - (end - start)
        if self.speculator is not None:
            self.speculator.dropped(start, end)  # a draft model's cache shifts too
        return Dropped.SHIFTED

    def cache_fingerprint(self) -> dict[str, Any]:
        """What a saved cache must match to be loaded into this context."""
        o = self.options
        return {
            "model": model_identity(o.path),
            "llama_cpp_python": str(getattr(self._lib, "__version__", "?")),
            "context": self.n_ctx,
            "kv_type": o.kv_type,
            "rope": [o.rope_freq_scale, o.rope_freq_base],
        }

    def cached_tokens(self) -> list[int]:
        """The token ids whose keys and values the context holds now."""
        return [int(t) for t in self._llm.input_ids[: self._llm.n_tokens]]

    def cache_state(self) -> bytes:
        """The context's KV cache (sequence 0), as llama.cpp serializes it."""
        size = self._lib.llama_state_seq_get_size(self._ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = self._lib.llama_state_seq_get_data(self._ctx, buf, size, 0)
        return bytes(buf[:n])

    def restore_cache(self, tokens: Sequence[int], state: bytes) -> bool:
        """Load a KV cache saved by `cache_state` for `tokens`; False if llama.cpp refuses it
        (the cache is then empty and the next prompt is read in full)."""
        llm = self._llm
        if len(tokens) > len(llm.input_ids):
            return False
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        read = self._lib.llama_state_seq_set_data(self._ctx, buf, len(state), 0)
        if read != len(state):
            self.forget_cache()
            mem = self._lib.llama_get_memory(self._ctx)
            self._lib.llama_memory_clear(mem, True)
            return False
        llm.input_ids[: len(tokens)] = list(tokens)
        llm.n_tokens = len(tokens)
        llm._requires_eval = True  # logits are not part of the state: the next read makes them
        return True

    def request_stop(self) -> None:
        """Stop the prompt read or reply as soon as possible (safe in a signal handler)."""
        self._stop_flag.set()
        if self.speculator is not None:
            self.speculator.request_stop()  # a draft model reading the chat

    def clear_stop(self) -> None:
        """A new read begins: an earlier request_stop() no longer applies."""
        self._stop_flag.clear()

    @contextmanager
    def abortable(self) -> Iterator[None]:
        """Within it, a llama_decode of many tokens returns 2 soon after request_stop()."""
        self._abort_hook(True)
        try:
            yield
        finally:
            self._abort_hook(False)

    def generate(
        self, prompt: Sequence[int], params: Sampling, stop: Sequence[str] = ()
    ) -> Iterator[EngineEvent]:
        """Stream a reply to `prompt` (the full token history) as TextChunks, then one Done."""
        n_prompt = len(prompt)
        if n_prompt >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n_prompt} tokens but the context holds {self.n_ctx}"
            )
        if params.seed >= 0:
            self._llm.set_seed(params.seed)
        self._stop_flag.clear()
        self._lib.llama_synchronize(self._ctx)  # count nothing queued before this turn
        self._lib.llama_perf_context_reset(self._ctx)
        run = _Run(ReplyText(self, stop), min(params.max_tokens, self.n_ctx - n_prompt))
        self._abort_hook(True)
        gen = self._tokens(prompt, params, run.budget)
        try:
            yield from self._stream(gen, run)
        except (RuntimeError, ValueError) as exc:
            # llama_decode returns 2 when our abort callback fired mid-prompt.
            if not self._stop_flag.is_set():
                raise GenerationError(f"llama.cpp failed while generating: {exc}") from exc
            run.finish = "interrupted"
        except KeyboardInterrupt:
            run.finish = "interrupted"
        finally:
            gen.close()
            self._abort_hook(False)
        tail = run.text.flush()
        if tail:
            yield TextChunk(tail)
        yield run.done(n_prompt, self._prompt_evaluated(run.clock.received), self.speculator)

    def _tokens(
        self, prompt: Sequence[int], params: Sampling, budget: int
    ) -> Generator[int, Any, None]:
        """The reply's tokens: llama-cpp-python's own loop, or the speculator's."""
        if self.speculator is None:
            return self._llm.generate(list(prompt), **_sampler(params))
        return self.speculator.generate(self._llm, prompt, _sampler(params), budget)

    def _stream(self, gen: Iterator[int], run: _Run) -> Iterator[EngineEvent]:
        for token in gen:
            run.clock.tick()
            if run.clock.received == 1:
                self._abort_hook(False)
            if self.is_eog(token):
                run.finish = "stop"
                return
            chunk = run.text.add(token)
            if chunk:
                yield TextChunk(chunk)
            if run.text.stopped:
                run.finish = "stop"
                return
            if len(run.text.tokens) >= run.budget:
                return
            if self._stop_flag.is_set():
                run.finish = "interrupted"
                return

    def _prompt_evaluated(self, received: int) -> int:
        """Prompt tokens llama.cpp decoded this turn: all decoded tokens less the generated ones
        fed back (every received token but the last is evaluated before the next is sampled)."""
        data = self._lib.llama_perf_context(self._ctx)
        spec = self.speculator
        if spec is not None and spec.last.prompt_read >= 0:
            return spec.last.prompt_read  # counted by llama.cpp before the first draft
        fed = max(received - 1, 0) if spec is None else spec.last.decoded
        return int(data.n_p_eval + data.n_eval) - fed


@dataclass
class _Run:
    """One reply in progress: its text, the clock, and how it ended."""

    text: ReplyText
    budget: int
    finish: FinishReason = "length"
    clock: ReplyClock = field(default_factory=ReplyClock)

    def done(self, n_prompt: int, evaluated: int, spec: LookupSpeculator | None) -> Done:
        return Done(
            finish_reason=self.finish,
            text=self.text.text,
            tokens=list(self.text.tokens),
            prompt_tokens=n_prompt,
            prompt_eval_tokens=evaluated,
            generated=self.clock.received,
            stopped_by=self.text.stopped_by,
            ttft_s=self.clock.ttft_s,
            decode_s=self.clock.decode_s,
            drafted=spec.last.drafted if spec else 0,
            accepted=spec.last.accepted if spec else 0,
        )


def _sampler(sampling: Sampling) -> dict[str, Any]:
    """llama-cpp-python's generate() arguments for our sampling settings."""
    return {
        "top_k": sampling.top_k,
        "top_p": sampling.top_p,
        "min_p": sampling.min_p,
        "temp": sampling.temperature,
        "repeat_penalty": sampling.repeat_penalty,
    }


# ggml type ids of the KV cache types airochat offers
_GGML_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}


def _kv_params(kv_type: str) -> dict[str, Any]:
    """llama.cpp's type_k/type_v; a quantized V cache needs flash attention."""
    if kv_type == "f16":
        return {}
    ggml_type = _GGML_TYPES[kv_type]
    return {"type_k": ggml_type, "type_v": ggml_type, "flash_attn": True}


def model_identity(path: Path) -> dict[str, Any]:
    """What tells one model file from another without hashing gigabytes: the sha256 when the
    file is a Hub blob (named by it), else its size and the sha256 of its first and last MiB."""
    real = path.resolve()
    size = real.stat().st_size
    name = real.name
    if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        return {"size": size, "sha256": name}
    h = hashlib.sha256()
    with real.open("rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(size - (1 << 20), 0))
        h.update(fh.read(1 << 20))
    return {"size": size, "sample_sha256": h.hexdigest()}


def _interruptible(load: Callable[[], Llama]) -> Llama:
    """Run a model load in a worker thread while the main thread waits in short joins: Ctrl-C
    then lands within 50 ms (inside llama.cpp's load, Python signal handlers run only in its
    log callback, which swallows the KeyboardInterrupt). The half-done load cannot be undone,
    so the caller ends the process."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["llm"] = load()
        except BaseException as exc:  # handed to the main thread below
            result["error"] = exc

    worker = threading.Thread(target=target, name="airochat-load", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        raise LoadInterrupted("stopped while loading the model") from None
    if "error" in result:
        raise result["error"]
    return cast("Llama", result["llm"])


class _UnusedChatHandler:
    """Stands in for llama-cpp-python's Jinja2ChatFormatter while a model loads: it compiles
    every `tokenizer.chat_template*` in the file (unsandboxed by our budget, and a syntax error
    there aborts the load), but airochat never uses its chat handlers -- we render templates
    ourselves, only when chosen, in a sandbox with a budget."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def to_chat_handler(self) -> None:
        return None


@contextmanager
def _no_chat_handlers() -> Iterator[None]:
    import llama_cpp.llama_chat_format as chat_format

    real = chat_format.Jinja2ChatFormatter
    setattr(chat_format, "Jinja2ChatFormatter", _UnusedChatHandler)  # noqa: B010
    try:
        yield
    finally:
        setattr(chat_format, "Jinja2ChatFormatter", real)  # noqa: B010


def amx_in_use() -> bool:
    """Whether this llama.cpp build would put quantized weights in ggml's AMX buffers: built
    with AMX (GGML_NATIVE on an AMX CPU) and running on one."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextmanager
def weights_without_amx() -> Iterator[None]:
    """ggml's AMX matmul (llama-cpp-python 0.3.36) crashes the process with SIGSEGV on the
    first decode of a quantized model, seen on an AMX Xeon (Gemma 3 Q4_K_M, SmolLM2 Q4_1).
    Where AMX would be used, the weights go to plain CPU buffers instead: llama.cpp's
    `use_extra_bufts = false`, the same switch as llama-server's `--no-repack`. The
    constructor has no keyword for it, so its default params are adjusted during the load."""
    import llama_cpp.llama_cpp as lib

    if not amx_in_use():
        yield
        return
    real = lib.llama_model_default_params

    def params() -> Any:
        out = real()
        out.use_extra_bufts = False
        return out

    setattr(lib, "llama_model_default_params", params)  # noqa: B010
    try:
        yield
    finally:
        setattr(lib, "llama_model_default_params", real)  # noqa: B010
