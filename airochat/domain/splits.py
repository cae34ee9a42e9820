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


# A 70B model at Q8 is ~75 GB: a few parts of the Hub's 50 GB limit, or a dozen of 10 GB. A
# listing of thousands of parts is not a model anyone published; refused before any download.
MAX_PARTS = 256


def problem(paths: list[str]) -> str | None:
    """Why these parts of one split do not make the whole file, or None when they do: the
    count is plausible, the indexes run 0..n-1 with none missing, all in one folder; a
    `partNofM` split has its M; a split of one part (only `-split-a` listed) is not whole."""
    if len(paths) > MAX_PARTS:
        return f"{len(paths)} parts listed: more than the {MAX_PARTS} any model needs"
    if len(paths) < 2:
        return "only one part is listed"
    wholes = {(part_of(p) or Part(p, "bytes", -1)).whole for p in paths}
    if len(wholes) != 1:
        return "the parts are of different files (or in different folders)"
    indexes = sorted((part_of(p) or Part(p, "bytes", -1)).index for p in paths)
    if indexes != list(range(len(paths))):
        if len(set(indexes)) != len(indexes):
            return "a part is listed twice"
        first_gap = next(i for i, n in enumerate(indexes) if i != n)
        return f"part {first_gap + 1} is missing"
    counts = {int(m["m"]) for p in paths if (m := _PART_OF.match(p.rsplit("/", 1)[-1]))}
    if counts and counts != {len(paths)}:
        return f"the names say {max(counts)} parts, {len(paths)} are listed"
    return None


def complete(paths: list[str]) -> bool:
    """All parts are listed (see `problem`)."""
    return problem(paths) is None
