"""Character cards (V2 `chara_card_v2`, V3 `chara_card_v3`): JSON files, or PNG images carrying
the card as base64 JSON in a `chara` or `ccv3` text chunk (`ccv3` preferred when both exist)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from airochat.errors import UsageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
USED = ("name", "description", "personality", "scenario")
MAX_CHUNK = 64 << 20


class CardError(UsageError):
    pass


def _png_text_chunks(data: bytes, where: str) -> dict[str, str]:
    chunks: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise CardError(f"{where}: truncated PNG (no end chunk)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        if length > MAX_CHUNK or pos + 12 + length > len(data):
            raise CardError(f"{where}: truncated or damaged PNG")
        body = data[pos + 8 : pos + 8 + length]
        if ctype == b"tEXt":
            key, _, value = body.partition(b"\0")
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        elif ctype == b"zTXt":
            key, _, rest = body.partition(b"\0")
            with contextlib.suppress(zlib.error):  # bounded: a card is no place for a zip bomb
                text = zlib.decompressobj().decompress(rest[1:], MAX_CHUNK)
                chunks[key.decode("latin-1")] = text.decode("latin-1")
        elif ctype == b"IEND":
            break
        pos += 12 + length
    return chunks


def read_card_json(path: Path) -> dict[str, Any]:
    """The card's JSON, from a .json file or a PNG's text chunk."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CardError(f"cannot read card {path}: {exc.strerror}") from None
    if data.startswith(PNG_SIGNATURE):
        chunks = _png_text_chunks(data, str(path))
        raw = chunks.get("ccv3") or chunks.get("chara")
        if raw is None:
            raise CardError(f"{path}: a PNG without a character card (no chara/ccv3 chunk)")
        try:
            text = base64.b64decode(raw).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CardError(f"{path}: the card chunk is not base64 JSON") from None
    else:
        text = data.decode("utf-8", errors="replace")
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CardError(f"{path}: the card is not valid JSON ({exc.msg})") from None
    if not isinstance(card, dict):
        raise CardError(f"{path}: the card is not a JSON object")
    return card


def card_character(path: Path) -> dict[str, Any]:
    """A scene character from a card: name, description, personality, scenario; every other
    field kept under `extensions` so nothing is lost."""
    card = read_card_json(path)
    data = card.get("data") if isinstance(card.get("data"), dict) else card  # V1 cards are flat
    assert isinstance(data, dict)
    if not str(data.get("name", "")).strip():
        raise CardError(f"{path}: the card has no name")
    out: dict[str, Any] = {k: " ".join(str(data.get(k, "")).split()) for k in USED}
    rest = {k: v for k, v in data.items() if k not in USED and v not in ("", [], {}, None)}
    rest.update({k: v for k, v in card.items() if k not in ("data",) and k not in USED})
    if rest:
        out["extensions"] = rest
    return out
