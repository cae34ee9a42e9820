"""--speculate draft:MODEL: the draft model found and its vocabulary checked against the
target's -- from the two files' headers, before either model is loaded or a server started --
then loaded beside the target (the same threads and KV type, the target's context).

Drafts are token ids: they mean the same to both models only when the vocabularies are the
same: as many tokens, the same texts in the same order (a hash of the stored token list, one
pass over contiguous bytes even for a 262k vocabulary), the same BOS and EOS.
"""

from __future__ import annotations

from dataclasses import replace

from airochat.adapters.gguf_file import GGUFHeader, check_loadable, read_header
from airochat.adapters.llama_draft import DraftSpeculator
from airochat.adapters.llama_engine import LlamaEngine
from airochat.domain.config import Settings
from airochat.errors import AirochatError
from airochat.services import loader
from airochat.services.resolve import Fetch, ResolvedModel, load_catalog, resolve


class VocabularyMismatch(AirochatError):
    """The draft model's tokens are not the target's: its drafts would mean other words."""


def draft_ref(mode: str) -> str | None:
    """MODEL of `draft:MODEL`, or None for the other modes."""
    return mode.removeprefix("draft:") if mode.startswith("draft:") else None


def vocabulary_difference(target: GGUFHeader, draft: GGUFHeader) -> str | None:
    """How `draft`'s vocabulary differs from `target`'s, or None when it is the same."""
    if draft.n_vocab != target.n_vocab:
        return f"{draft.n_vocab} tokens against {target.n_vocab}"
    if draft.vocab_sha256 != target.vocab_sha256:
        return f"the same number of tokens ({draft.n_vocab}) with other texts"
    for role in ("bos", "eos"):
        key = f"tokenizer.ggml.{role}_token_id"
        mine, theirs = draft.metadata.get(key), target.metadata.get(key)
        if mine != theirs:
            return f"{role.upper()} token {mine} against {theirs}"
    return None


def checked_draft(
    settings: Settings, plan: loader.ModelPlan, fetch: Fetch | None
) -> ResolvedModel | None:
    """The draft model `settings.speculate` names, once its vocabulary is known to be the
    target's (None: no draft model asked for)."""
    ref = draft_ref(settings.speculate)
    if ref is None:
        return None
    draft = resolve(ref, load_catalog(), fetch)
    header = read_header(draft.path)
    check_loadable(header)
    why = vocabulary_difference(plan.header, header)
    if why:
        raise VocabularyMismatch(
            f"draft model {draft.name} has another vocabulary than {plan.model.name} ({why})"
        )
    return draft


def load_draft(
    draft: ResolvedModel, plan: loader.ModelPlan, settings: Settings, verbose: bool = False
) -> DraftSpeculator:
    """The draft model loaded as the target was (its context, threads, KV type); on the GPU
    entirely where the target has layers there, else on the CPU."""
    target = loader.load_options(plan, settings, plan.ctx, verbose)
    options = replace(
        target,
        path=draft.path,
        n_gpu_layers=-1 if target.n_gpu_layers else 0,
        rope_freq_scale=0.0,  # the target's --rope-scale is not the draft's
        rope_freq_base=0.0,
    )
    return DraftSpeculator(LlamaEngine.load(options), draft.name)
