"""Read and check a GGUF file's header before llama.cpp sees it.

llama.cpp aborts the whole process on some malformed files and its GGUF parser has had heap
overflows, so every length and count here is checked against the bytes actually left in the
file before anything is read or allocated. Reads go through mmap: memory stays bounded by what
we keep (scalars, short strings, short arrays), whatever the file claims.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airochat.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
_LEGACY_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt"}
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_DIMS = 4
KEEP_STRING = 1 << 20  # longer strings are skipped, not kept
KEEP_ARRAY = 64  # longer arrays are kept as (type, count)

# ggml type id -> (elements per block, bytes per block), from ggml.h / ggml.c
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# GGUF value types: id -> struct format (None: string/array)
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
VOCAB_KEY = "tokenizer.ggml.tokens"
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # from the start of the data section
    nbytes: int  # 0 when the type is unknown to us

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type_id, (f"type{self.type_id}", 0, 0))[0]


@dataclass
class GGUFHeader:
    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    repeated_token: tuple[int, int, str] | None = None  # (first id, id, text) of a repeat
    vocab_sha256: str = ""  # of the token texts as stored (a draft model must have the same)

    @property
    def arch(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.arch}.{key}", default)

    @property
    def context_length(self) -> int:
        return int(self.arch_value("context_length", 0) or 0)

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def n_vocab(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, tuple):
            return int(tokens[2])
        return len(tokens) if isinstance(tokens, list) else 0

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", self.path.stem))


class _Bad(Exception):
    pass


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Bad(f"truncated while reading {what}")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("<I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("<Q", what))

    def string(self, what: str, keep: bool = True) -> str | None:
        n = self.u64(f"{what} length")
        self.need(n, what)  # a length past the end of the file is rejected, never allocated
        start = self.pos
        self.pos += n
        if not keep or n > KEEP_STRING:
            return None
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def _skip_strings(self, count: int, what: str) -> None:
        # Hot loop: a vocabulary has up to ~260K strings.
        pos, buf, size, unpack = self.pos, self.buf, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise _Bad(f"truncated while reading {what}")
            pos += 8 + unpack(buf, pos)[0]
        if pos > size:
            raise _Bad(f"truncated while reading {what}")
        self.pos = pos

    def unique_strings(self, count: int, what: str) -> list[bytes] | None:
        """Skip `count` strings as `_skip_strings` does, noting whether any text repeats: None
        if none does, else every text (for the caller to name the two ids). A set in the hot
        loop (+80 ms on a 262K vocabulary); the texts are kept only once a repeat is known."""
        start, buf, size, unpack = self.pos, self.buf, self.size, _U64.unpack_from
        seen: set[bytes] = set()
        add, pos = seen.add, start
        for _ in range(count):
            if pos + 8 > size:
                raise _Bad(f"truncated while reading {what}")
            end = pos + 8 + unpack(buf, pos)[0]
            add(buf[pos + 8 : end])
            pos = end
        if pos > size:
            raise _Bad(f"truncated while reading {what}")
        self.pos = pos
        if len(seen) == count:
            return None
        texts, pos = [], start
        for _ in range(count):
            end = pos + 8 + unpack(buf, pos)[0]
            texts.append(bytes(buf[pos + 8 : end]))
            pos = end
        return texts

    def value(self, vtype: int, what: str) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY:
            itype = self.u32(f"{what} item type")
            count = self.u64(f"{what} count")
            if itype == _ARRAY:
                raise _Bad(f"nested arrays in {what}")
            if itype in _SCALARS:
                width = struct.calcsize(_SCALARS[itype])
                self.need(count * width, what)
                if count <= KEEP_ARRAY:
                    return [self.value(itype, what) for _ in range(count)]
                self.pos += count * width
                return ("array", itype, count)
            if itype != _STRING:
                raise _Bad(f"unknown value type {itype} in {what}")
            self.need(count * 8, what)  # every string has at least its 8-byte length
            if count <= KEEP_ARRAY:
                return [self.string(what) for _ in range(count)]
            self._skip_strings(count, what)
            return ("array", itype, count)
        raise _Bad(f"unknown value type {vtype} in {what}")


def _sniff(head: bytes, size: int) -> str | None:
    """A one-line reason when the file is plainly not a GGUF model."""
    if size == 0:
        return "the file is empty"
    text = head.lstrip().lower()
    if text.startswith(b"version https://git-lfs"):
        return "this is a Git LFS pointer, not the model (fetch the real file: airochat pull)"
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"{")):
        return "this is a web page or error response, not a model file (re-download it)"
    if head[:4] in _LEGACY_MAGICS:
        kind = _LEGACY_MAGICS[head[:4]]
        return f"this is a legacy GGML ({kind}) file; convert it to GGUF first (airochat convert)"
    if head[:4] != GGUF_MAGIC:
        return f"not a GGUF file (magic {head[:4]!r})"
    return None


def read_header(path: Path) -> GGUFHeader:
    """Parse and check the header; raise ModelLoadError with a one-line reason if it is bad."""
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            head = fh.read(64)
            reason = _sniff(head, size)
            if reason:
                raise ModelLoadError(f"{path.name}: {reason}")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except _Bad as exc:
        raise ModelLoadError(f"{path.name}: {exc}; re-download it (airochat pull)") from None
    except OSError as exc:
        raise ModelLoadError(f"{path.name}: cannot read ({exc.strerror})") from None


def _parse(path: Path, buf: mmap.mmap, size: int) -> GGUFHeader:
    r = _Reader(buf)
    r.pos = 4
    version = r.u32("version")
    if version not in (2, 3):
        raise ModelLoadError(f"{path.name}: unsupported GGUF version {version} (want 2 or 3)")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("metadata count")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise ModelLoadError(
            f"{path.name}: implausible header ({n_tensors} tensors, {n_kv} metadata keys)"
        )
    header = GGUFHeader(path=path, version=version, file_size=size)
    for i in range(n_kv):
        key = r.string(f"metadata key {i}") or ""
        vtype = r.u32(f"type of {key}")
        start = r.pos
        if key == VOCAB_KEY and vtype == _ARRAY:
            header.metadata[key], header.repeated_token = _vocabulary(r)
        else:
            header.metadata[key] = r.value(vtype, key)
        if key == VOCAB_KEY:  # one pass over contiguous bytes: ms for 262k
            header.vocab_sha256 = hashlib.sha256(buf[start : r.pos]).hexdigest()
    infos = [_tensor_info(r, i) for i in range(n_tensors)]
    align = header.metadata.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise _Bad(f"bad alignment {align!r}")
    header.data_offset = (r.pos + align - 1) // align * align
    for t in infos:
        end = header.data_offset + t.offset + t.nbytes
        if t.offset % align or end > size:
            raise _Bad(f"tensor {t.name} lies outside the file")
    header.tensors = infos
    return header


def _vocabulary(r: _Reader) -> tuple[Any, tuple[int, int, str] | None]:
    """The token list's value and its first repeated text: llama.cpp maps each token's text
    to its id and aborts the process when two ids share one."""
    start = r.pos
    itype, count = r.u32(VOCAB_KEY), r.u64(VOCAB_KEY)
    if itype != _STRING or count <= KEEP_ARRAY:
        r.pos = start
        value = r.value(_ARRAY, VOCAB_KEY)
        kept = [str(t).encode() for t in value] if isinstance(value, list) else []
        return value, _first_repeat(kept)
    r.need(count * 8, VOCAB_KEY)
    texts = r.unique_strings(count, VOCAB_KEY)
    return ("array", _STRING, count), _first_repeat(texts) if texts is not None else None


def _first_repeat(texts: list[bytes]) -> tuple[int, int, str] | None:
    first: dict[bytes, int] = {}
    for i, text in enumerate(texts):
        j = first.setdefault(text, i)
        if j != i:
            return j, i, text.decode("utf-8", errors="replace")
    return None


def _tensor_info(r: _Reader, i: int) -> TensorInfo:
    name = r.string(f"tensor {i} name") or f"#{i}"
    n_dims = r.u32(f"tensor {name} dims")
    if not 1 <= n_dims <= MAX_DIMS:
        raise _Bad(f"tensor {name} has {n_dims} dimensions")
    shape = tuple(r.u64(f"tensor {name} shape") for _ in range(n_dims))
    count = 1
    for d in shape:
        if d == 0 or d >= 1 << 40:
            raise _Bad(f"tensor {name} has an impossible shape {shape}")
        count *= d
    type_id = r.u32(f"tensor {name} type")
    offset = r.u64(f"tensor {name} offset")
    nbytes = 0
    if type_id in GGML_TYPES:
        _, block, bsize = GGML_TYPES[type_id]
        if shape[0] % block:
            raise _Bad(f"tensor {name} row does not fill whole blocks")
        nbytes = count // block * bsize
    if count >= 1 << 50:
        raise _Bad(f"tensor {name} is impossibly large")
    return TensorInfo(name=name, shape=shape, type_id=type_id, offset=offset, nbytes=nbytes)


def check_loadable(header: GGUFHeader) -> None:
    """What llama.cpp would abort the whole process on (exit 134, no message), checked first:
    a model with no layers, a token text twice in its vocabulary, special token ids outside
    it."""
    name = header.path.name
    if not header.arch:
        raise ModelLoadError(f"{name}: no general.architecture in the file; not a usable model")
    layers = header.arch_value("block_count")
    if not isinstance(layers, int) or layers < 1:
        raise ModelLoadError(f"{name}: the model has {layers!r} layers; the file is damaged")
    n_vocab = header.n_vocab
    if n_vocab < 1:
        raise ModelLoadError(f"{name}: the model has no vocabulary (tokenizer.ggml.tokens)")
    if header.repeated_token:
        first, again, text = header.repeated_token
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ModelLoadError(
            f"{name}: tokens {first} and {again} of the vocabulary are both {shown!r}; "
            "llama.cpp cannot load a vocabulary with a repeated token (the file is damaged)"
        )
    for role in ("bos", "eos", "unknown", "padding", "eot", "sep"):
        tok = header.metadata.get(f"tokenizer.ggml.{role}_token_id")
        if isinstance(tok, int) and not isinstance(tok, bool) and not 0 <= tok < n_vocab:
            raise ModelLoadError(
                f"{name}: the {role} token id {tok} is outside the vocabulary "
                f"(0..{n_vocab - 1}); the file is damaged"
            )


def whole_file_problem(path: Path) -> str | None:
    """Why a file joined from parts is not one whole GGUF model (a part missing, one of
    another file, one too many), or None: its header parses, every tensor lies inside it,
    and nothing follows the last one but alignment padding."""
    try:
        header = read_header(path)
    except ModelLoadError as exc:
        return str(exc).split(": ", 1)[-1].replace("; re-download it (airochat pull)", "")
    end = max((header.data_offset + t.offset + t.nbytes for t in header.tensors), default=0)
    align = header.metadata.get("general.alignment", 32)
    if isinstance(align, int) and header.file_size - end >= max(align, 32):
        return f"{header.file_size - end} bytes follow the last tensor"
    return None
