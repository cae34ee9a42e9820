"""Quants published in parts, as the airoboros repos on the Hub have them (files over the Hub's
old 50 GB limit):

- raw byte splits, concatenated in order: `X.Q6_K.gguf-split-a`, `-split-b`, ... (TheBloke);
- the same as `X.Q6_K.gguf.part1of2`, `.part2of2` (mradermacher);
- a zip archive in volumes: `X.q6_K.bin.zip.001`, `.zip.002` holding the one GGML `.bin`.

llama.cpp's own shards (`X-00001-of-00003.gguf`) are not in this list: llama.cpp loads them as
they are. File names are read from the repo listing, never built from the repo name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Scheme = Literal["bytes", "zip"]

_BYTE_SPLIT = re.compile(r"^(?P<whole>.+\.(?:gguf|bin))-split-(?P<letter>[a-z])$", re.IGNORECASE)
_PART_OF = re.compile(r"^(?P<whole>.+\.(?:gguf|bin))\.part(?P<n>\d+)of(?P<m>\d+)$", re.IGNORECASE)
_ZIP_VOLUME = re.compile(r"^(?P<whole>.+\.bin)\.zip\.(?P<n>\d{3})$", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """One file of a split: what it joins into, how, and its place in the order."""

    whole: str  # the file the parts make (a .gguf, or the .bin inside a zip)
    scheme: Scheme
    index: int


def part_of(path: str) -> Part | None:
    """The split a repo file belongs to, or None for a whole file."""
    name = path.rsplit("/", 1)[-1]
    prefix = path[: len(path) - len(name)]
    if m := _BYTE_SPLIT.match(name):
        return Part(prefix + m["whole"], "bytes", ord(m["letter"].lower()) - ord("a"))
    if m := _PART_OF.match(name):
        return Part(prefix + m["whole"], "bytes", int(m["n"]) - 1)
    if m := _ZIP_VOLUME.match(name):
        return Part(prefix + m["whole"], "zip", int(m["n"]) - 1)
    return None


def model_name(path: str) -> str:
    """The file a repo file stands for once joined (itself when it is whole)."""
    part = part_of(path)
    return part.whole if part else path


def ordered(paths: list[str]) -> list[str]:
    """The parts of one split in joining order (`part10of12` after `part9of12`)."""
    return sorted(paths, key=lambda p: (part_of(p) or Part(p, "bytes", 0)).index)


def complete(paths: list[str]) -> bool:
    """All parts are listed: indexes 0..n-1 with none missing (and for `partNofM`, M of them)."""
    indexes = sorted((part_of(p) or Part(p, "bytes", -1)).index for p in paths)
    if indexes != list(range(len(paths))):
        return False
    counts = {int(m["m"]) for p in paths if (m := _PART_OF.match(p.rsplit("/", 1)[-1]))}
    return not counts or counts == {len(paths)}
