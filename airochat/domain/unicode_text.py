"""Text that can always be written as UTF-8. A Python str may hold lone surrogates -- from
JSON's `\\udc80` escapes (valid JSON), or bytes a terminal or the command line decoded with
surrogateescape -- and writing one raises. These helpers find and repair them."""

from __future__ import annotations

import json
import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def valid_unicode(text: str) -> str:
    """`text` writable as UTF-8: a surrogate pair split in two becomes its character, a lone
    surrogate U+FFFD."""
    if not has_lone_surrogate(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def valid_json(data: Any) -> Any:
    """Parsed JSON with every string made writable (see `valid_unicode`)."""
    text = json.dumps(data, ensure_ascii=False)
    return json.loads(valid_unicode(text)) if has_lone_surrogate(text) else data
