"""From settings and a MODEL argument to a loaded engine and a chosen template.

Every decision (template, context, threads) keeps its reason, for `info` and `--verbose`.
"""

from __future__ import annotations

from dataclasses import dataclass

from airochat.adapters.engine import LlamaEngine, LoadOptions
from airochat.adapters.gguf_file import GGUFHeader, read_header
from airochat.adapters.machine import physical_cores
from airochat.domain.chat_template import template_from_gguf
from airochat.domain.config import Settings
from airochat.domain.templates import (
    DEFAULT_TEMPLATE,
    Template,
    get_template,
    template_for_model_name,
)
from airochat.errors import UsageError
from airochat.services.models import ResolvedModel, load_catalog, resolve

# Without a catalog entry or --ctx, a model trained for a huge context still starts at this
# size: the KV cache for 128K tokens can need more memory than the weights.
DEFAULT_CTX_CAP = 8192


@dataclass(frozen=True)
class Choice:
    value: str
    reason: str


@dataclass(frozen=True)
class ModelPlan:
    model: ResolvedModel
    header: GGUFHeader
    template: Choice
    ctx: int
    ctx_reason: str
    threads: int
    rope_scale: float


def choose_template(settings: Settings, model: ResolvedModel, header: GGUFHeader) -> Choice:
    if settings.template:
        if settings.template != "gguf":
            get_template(settings.template)  # fail early on a typo
        return Choice(settings.template, "chosen with --template / config")
    if model.entry and model.entry.template:
        return Choice(model.entry.template, f"from the catalog entry {model.entry.alias}")
    for name in (model.name, header.name, str(header.metadata.get("general.basename", ""))):
        by_name = template_for_model_name(name)
        if by_name:
            return Choice(by_name, f"from the model name {name!r}")
    if header.chat_template:
        return Choice("gguf", "the model's own chat template (tokenizer.chat_template)")
    return Choice(DEFAULT_TEMPLATE, "default (no catalog entry, no airoboros name, no template)")


def make_template(choice: Choice, header: GGUFHeader, engine: LlamaEngine) -> Template:
    """The Template object; `gguf` is built from the file's own jinja template."""
    if choice.value != "gguf":
        return get_template(choice.value)
    if not header.chat_template:
        raise UsageError(f"{header.path.name} has no chat template of its own; pick --template")
    eog = tuple(dict.fromkeys((engine.token_text(engine.eos_id), *engine.eog_texts())))
    return template_from_gguf(header.chat_template, engine.token_text(engine.bos_id), eog[0], eog)


def plan(settings: Settings, ref: str) -> ModelPlan:
    model = resolve(ref, load_catalog())
    header = read_header(model.path)
    template = choose_template(settings, model, header)
    trained = header.context_length
    if settings.ctx:
        ctx, why = settings.ctx, "set with --ctx / config"
    elif model.entry and model.entry.ctx:
        ctx, why = model.entry.ctx, f"from the catalog entry {model.entry.alias}"
    elif trained:
        ctx = min(trained, DEFAULT_CTX_CAP)
        why = "the model's trained context" + (
            f" ({trained}), capped; raise it with --ctx" if trained > ctx else ""
        )
    else:
        ctx, why = 4096, "no context length in the file; assumed"
    threads = settings.threads or physical_cores()
    rope = model.entry.rope_scale if model.entry else 0.0
    return ModelPlan(model, header, template, ctx, why, threads, rope)


def load(
    plan: ModelPlan, settings: Settings, verbose: bool = False, vocab_only: bool = False
) -> LlamaEngine:
    options = LoadOptions(
        path=plan.model.path,
        n_ctx=plan.ctx,
        n_threads=plan.threads,
        seed=settings.sampling.seed,
        # llama.cpp's freq_scale is the inverse of the linear factor.
        rope_freq_scale=1.0 / plan.rope_scale if plan.rope_scale else 0.0,
        verbose=verbose,
        vocab_only=vocab_only,
    )
    return LlamaEngine.load(options)
