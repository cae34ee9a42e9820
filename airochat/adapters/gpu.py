"""What GPU offload this process can use: llama.cpp's build, and free VRAM from NVML."""

from __future__ import annotations

import os

# For tests and planning on machines without a GPU: pretend this much VRAM is free (MiB).
# The only simulated part of airochat; documented in the README.
FAKE_VRAM_ENV = "AIROCHAT_FAKE_FREE_VRAM_MIB"


def offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def free_vram() -> int | None:
    """Free bytes on GPU 0, or None when llama.cpp cannot offload or no GPU answers."""
    fake = os.environ.get(FAKE_VRAM_ENV)
    if fake:
        return int(float(fake) * (1 << 20))
    if not offload_supported():
        return None
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free)
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
