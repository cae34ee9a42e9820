"""The airoboros cards' closed-context QA block: BEGININPUT ... ENDINSTRUCTION.

Each document gets its own input block with metadata lines (source, date, any --meta), and the
question goes in the instruction block. Trained this way, the model answers from the given text
and can cite the metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airochat.errors import InputFileError, UsageError

NO_GUESS = "Don't make up answers if you don't know."
PLAIN_SUFFIX = " PLAINFORMAT"


@dataclass(frozen=True)
class Document:
    text: str
    meta: dict[str, str] = field(default_factory=dict)


# A document bigger than this cannot fit any context airochat runs (32K tokens of long words).
MAX_DOCUMENT_BYTES = 16 << 20


def document_from_path(path: Path) -> Document:
    """A regular file's text: a FIFO, a device (/dev/zero) or a file past the limit is refused
    before anything is read, since none could be a document that fits a context."""
    try:
        if not path.is_file():
            what = "no such context file" if not path.exists() else "not a regular file"
            raise InputFileError(f"{what}: {path}")
        info = path.stat()
        if info.st_size > MAX_DOCUMENT_BYTES:
            raise InputFileError(
                f"{path} is {info.st_size >> 20} MiB; documents are limited to 16 MiB "
                "(far more than any context holds)"
            )
        text = path.read_text(encoding="utf-8")
        mtime = info.st_mtime
    except UnicodeDecodeError:
        raise InputFileError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from None
    date = dt.datetime.fromtimestamp(mtime, tz=dt.timezone.utc).date().isoformat()
    return Document(text=text, meta={"source": path.name, "date": date})


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or "\n" in pair:
            raise UsageError(f"--meta wants key=value, got {pair!r}")
        meta[key.strip()] = value.strip()
    return meta


def closed_context(
    docs: Sequence[Document], question: str, extra_meta: dict[str, str], no_guess: bool = False
) -> str:
    blocks = []
    for doc in docs:
        meta = {**doc.meta, **extra_meta}
        lines = "".join(f"{k}: {v}\n" for k, v in meta.items())
        blocks.append(
            f"BEGININPUT\nBEGINCONTEXT\n{lines}ENDCONTEXT\n{doc.text.strip(chr(10))}\nENDINPUT\n"
        )
    instruction = question.strip("\n") + (f"\n{NO_GUESS}" if no_guess else "")
    return "".join(blocks) + f"BEGININSTRUCTION\n{instruction}\nENDINSTRUCTION"


def plain_format(prompt: str) -> str:
    """PLAINFORMAT: the cards' marker asking for bare code, no prose or fences."""
    return prompt + PLAIN_SUFFIX
