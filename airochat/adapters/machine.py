"""Facts about this machine: cores, memory, CPU features."""

from __future__ import annotations

import os
from pathlib import Path


def physical_cores() -> int:
    """Physical cores (hyper-threads share a core's arithmetic units, which llama.cpp saturates)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            core = value.strip()
            cores.add((phys, core))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(len(cores) or usable or 1, usable or 1))


def cpu_has_amx() -> bool:
    """Whether the CPU has Intel AMX (int8 tiles), which ggml's AMX matmul uses."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(
        line.startswith("flags") and "amx_int8" in line.split() for line in text.splitlines()
    )


def available_memory() -> int:
    """Bytes of RAM available to a new allocation (MemAvailable), or 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
