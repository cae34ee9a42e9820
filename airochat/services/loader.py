"""From settings and a MODEL argument to a loaded engine and a chosen template.

Every decision (template, context, offload, threads) keeps its reason, for `info` and for the
notes printed at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from airochat.adapters import gpu
from airochat.adapters.gguf_file import GGUFHeader, check_loadable, read_header
from airochat.adapters.llama_engine import ContextAllocError, LlamaEngine
from airochat.adapters.machine import available_memory, physical_cores
from airochat.domain.chat_template import template_from_gguf
from airochat.domain.config import KV_TYPES, Settings
from airochat.domain.load_options import LoadOptions, rope_freq_scale
from airochat.domain.memory import GiB, ModelShape, Offload, max_context, plan_offload
from airochat.domain.memory import shape_from_gguf as _shape
from airochat.domain.templates import (
    DEFAULT_TEMPLATE,
    Template,
    get_template,
    template_for_model_name,
)
from airochat.errors import ContextOverflowError, UsageError
from airochat.services.resolve import Fetch, ResolvedModel, load_catalog, resolve

# Without a catalog entry or --ctx, a model trained for a huge context still starts at this
# size: the KV cache for 128K tokens can need more memory than the weights.
DEFAULT_CTX_CAP = 8192
MIN_CTX = 512


@dataclass(frozen=True)
class Choice:
    value: str
    reason: str


@dataclass
class ModelPlan:
    model: ResolvedModel
    header: GGUFHeader
    template: Choice
    ctx: int
    ctx_reason: str
    threads: int
    rope_scale: float
    shape: ModelShape
    offload: Offload
    notes: list[str] = field(default_factory=list)
    kv_type: str = "f16"


def choose_template(settings: Settings, model: ResolvedModel, header: GGUFHeader) -> Choice:
    if settings.template:
        if settings.template != "gguf":
            get_template(settings.template)  # fail early on a typo
        return Choice(settings.template, "chosen with --template / config")
    if model.entry and model.entry.template:
        return Choice(model.entry.template, f"from the catalog entry {model.entry.alias}")
    stored = header.metadata.get("airochat.template")
    if isinstance(stored, str) and stored:
        return Choice(stored, "recorded in the file when airochat converted it")
    for name in (model.name, header.name, str(header.metadata.get("general.basename", ""))):
        by_name = template_for_model_name(name)
        if by_name:
            return Choice(by_name, f"from the model name {name!r}")
    if header.chat_template:
        return Choice("gguf", "the model's own chat template (tokenizer.chat_template)")
    return Choice(DEFAULT_TEMPLATE, "default (no catalog entry, no airoboros name, no template)")


@dataclass(frozen=True)
class ModelTexts:
    """What a `gguf` template is built from: the model's own jinja source (if any) and the
    texts of its BOS and end-of-turn tokens."""

    name: str
    chat_template: str | None
    bos: str
    eog: tuple[str, ...]


def model_texts(header: GGUFHeader, engine: LlamaEngine) -> ModelTexts:
    # Finding the other end-of-turn tokens takes a pass over the vocabulary (0.2 s of a 262k
    # one at every start): only the model's own template uses them.
    others = engine.eog_texts() if header.chat_template else ()
    eog = tuple(dict.fromkeys((engine.token_text(engine.eos_id), *others)))
    bos = engine.token_text(engine.bos_id) if engine.bos_id >= 0 else ""
    return ModelTexts(header.path.name, header.chat_template, bos, eog)


def make_template(name: str, texts: ModelTexts) -> Template:
    """The Template by name; `gguf` is built from the model's own jinja template."""
    if name != "gguf":
        return get_template(name)
    if not texts.chat_template:
        raise UsageError(f"{texts.name} has no chat template of its own; pick --template")
    return template_from_gguf(texts.chat_template, texts.bos, texts.eog[0], texts.eog)


def shape_of(header: GGUFHeader, kv_type: str = "f16") -> ModelShape:
    tensors = [(t.name, t.nbytes) for t in header.tensors]
    return _shape(header.metadata, tensors, header.n_vocab, KV_TYPES[kv_type])


def _wanted_ctx(settings: Settings, model: ResolvedModel, trained: int) -> tuple[int, str, bool]:
    """(context, reason, explicit)."""
    if settings.ctx:
        return settings.ctx, "set with --ctx / config", True
    if model.entry and model.entry.ctx:
        return model.entry.ctx, f"from the catalog entry {model.entry.alias}", False
    if trained:
        ctx = min(trained, DEFAULT_CTX_CAP)
        capped = f" ({trained}), capped at {ctx}; raise it with --ctx" if trained > ctx else ""
        return ctx, "the model's trained context" + capped, False
    return 4096, "no context length in the file; assumed 4096", False


def plan(settings: Settings, ref: str, fetch: Fetch | None = None) -> ModelPlan:
    model = resolve(ref, load_catalog(), fetch)
    header = read_header(model.path)
    check_loadable(header)
    shape = shape_of(header, settings.kv_type)
    ctx, why, explicit = _wanted_ctx(settings, model, header.context_length)
    offload = plan_offload(shape, ctx, settings.gpu_layers.strip().lower(), gpu.free_vram())
    notes = []
    if offload.n_gpu_layers == 0 and settings.gpu_layers not in ("0", "auto"):
        notes.append(offload.reason)  # asked for the GPU and cannot have it
    avail = available_memory()
    if avail:
        fit = max_context(shape, avail, offload.n_gpu_layers)
        if ctx > fit:
            need = shape.kv_bytes_per_token * ctx / GiB
            if explicit or fit < MIN_CTX:
                raise ContextOverflowError(
                    f"a {ctx}-token context needs {need:.1f} GiB of KV cache; with "
                    f"{avail / GiB:.1f} GiB free, at most --ctx {max(fit, 0)} fits here"
                )
            ctx = fit // 256 * 256
            why += f"; reduced to {ctx} to fit {avail / GiB:.1f} GiB of free memory"
            notes.append(f"context {ctx} tokens (the most that fits in free memory)")
        offload = plan_offload(shape, ctx, settings.gpu_layers.strip().lower(), gpu.free_vram())
    threads, note = _threads(settings.threads)
    notes += [note] if note else []
    notes += _past_training(ctx, header.context_length, settings.rope_scale or model_rope(model))
    rope = settings.rope_scale or model_rope(model)
    return ModelPlan(
        model,
        header,
        choose_template(settings, model, header),
        ctx,
        why,
        threads,
        rope,
        shape,
        offload,
        notes,
        settings.kv_type,
    )


def model_rope(model: ResolvedModel) -> float:
    return model.entry.rope_scale if model.entry else 0.0


def _threads(asked: int) -> tuple[int, str]:
    """Threads for llama.cpp: physical cores by default; more than the CPUs this process may
    run on only slows it (and an absurd number makes llama.cpp crash), so they are capped."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    if not asked:
        return physical_cores(), ""
    if asked > usable:
        return usable, f"--threads {asked} is more than the {usable} CPUs here: using {usable}"
    return asked, ""


def _past_training(ctx: int, trained: int, rope_scale: float) -> list[str]:
    reach = int(trained * (rope_scale or 1.0))
    if trained and ctx > reach:
        return [
            f"context {ctx} is past the {reach} tokens the model was trained for: replies "
            "degrade beyond that (unless its RoPE is scaled: --rope-scale)"
        ]
    return []


def load_options(
    plan: ModelPlan, settings: Settings, ctx: int, verbose: bool = False, vocab_only: bool = False
) -> LoadOptions:
    """The one translation of the settings and the plan into what llama.cpp loads (the
    in-process engine's arguments, and a started llama-server's flags)."""
    return LoadOptions(
        path=plan.model.path,
        n_ctx=ctx,
        n_threads=plan.threads,
        n_gpu_layers=plan.offload.n_gpu_layers,
        seed=settings.sampling.seed,
        rope_freq_scale=rope_freq_scale(plan.rope_scale),
        rope_freq_base=settings.rope_freq_base,
        use_mmap=settings.mmap,
        use_mlock=settings.mlock,
        kv_type=plan.kv_type,
        verbose=verbose,
        vocab_only=vocab_only,
    )


def load(
    plan: ModelPlan, settings: Settings, verbose: bool = False, vocab_only: bool = False
) -> LlamaEngine:
    """Load; if llama.cpp cannot allocate the context, halve it (down to 512) and say so."""
    ctx = plan.ctx
    while True:
        options = load_options(plan, settings, ctx, verbose, vocab_only)
        try:
            engine = LlamaEngine.load(options)
        except ContextAllocError:
            if ctx // 2 < MIN_CTX:
                raise
            plan.notes.append(
                f"llama.cpp could not allocate a {ctx}-token context; trying {ctx // 2}"
            )
            ctx //= 2
            continue
        plan.ctx = ctx
        return engine
