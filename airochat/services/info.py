"""`airochat info`: what a model file is and how airochat would run it, without running it."""

from __future__ import annotations

import math
from typing import Any

from airochat.adapters import gpu
from airochat.domain.config import Settings
from airochat.domain.memory import plan_offload
from airochat.domain.quants import quant_name
from airochat.services import loader


def model_info(settings: Settings, ref: str) -> dict[str, Any]:
    plan = loader.plan(settings, ref)
    h = plan.header
    meta = h.metadata
    arch = h.arch
    cpu = plan_offload(plan.shape, plan.ctx, "0", None)
    vram = gpu.free_vram()
    specials: dict[str, Any] = {}
    engine = loader.load(plan, settings, vocab_only=True)
    try:
        for role in ("bos", "eos", "unknown", "padding"):
            tok = meta.get(f"tokenizer.ggml.{role}_token_id")
            if isinstance(tok, int):
                specials[role] = {"id": tok, "text": engine.token_text(tok)}
        eog = [t for t in engine.eog_texts() if t]
    finally:
        engine.close()
    return {
        "model": plan.model.name,
        "path": str(plan.model.path),
        "catalog": plan.model.entry.alias if plan.model.entry else None,
        "architecture": arch,
        "name": h.name,
        "parameters": sum(math.prod(t.shape) for t in h.tensors),
        "quant": quant_name(meta.get("general.file_type")),
        "file_size": h.file_size,
        "gguf_version": h.version,
        "layers": plan.shape.n_layer,
        "trained_context": h.context_length,
        "context": plan.ctx,
        "context_reason": plan.ctx_reason,
        "rope": {
            "freq_base": h.arch_value("rope.freq_base"),
            "scaling_type": h.arch_value("rope.scaling.type"),
            "scaling_factor": h.arch_value("rope.scaling.factor"),
            "linear_scale_applied": plan.rope_scale or None,
        },
        "template": plan.template.value,
        "template_reason": plan.template.reason,
        "has_chat_template": h.chat_template is not None,
        "special_tokens": specials,
        "end_of_turn_tokens": eog,
        "kv_type": plan.kv_type,
        "kv_bytes_per_token": plan.shape.kv_bytes_per_token,
        "memory": {
            "cpu_only": {"ram_bytes": cpu.ram_bytes},
            "chosen": {
                "gpu_layers": plan.offload.n_gpu_layers,
                "ram_bytes": plan.offload.ram_bytes,
                "vram_bytes": plan.offload.vram_bytes,
                "reason": plan.offload.reason,
                "free_vram_bytes": vram,
            },
        },
        "threads": plan.threads,
    }
