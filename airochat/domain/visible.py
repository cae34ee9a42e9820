"""Text that did not come from airochat, made safe to show on a terminal.

A reply, a model file's metadata, a scene card, a Hub listing or a server's error body can hold
bytes a terminal obeys: ESC and CSI sequences clear the screen, move the cursor or hide text,
OSC sequences set the title, plant links or write the clipboard (OSC 52), a carriage return or
a backspace overwrites what was shown, and bidi controls reorder a line so it reads other than
it is. `visible` shows each such character instead of letting the terminal act on it:

- C0 controls (except newline and tab), DEL and the C1 controls (U+0080-U+009F, CSI U+009B and
  OSC U+009D among them) as `\\x1b`-style escapes;
- the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) as `<U+202E>`.

Everything else passes unchanged, so the text keeps its length in characters a terminal prints.
Pipes and --json are the user's data and keep the exact bytes: only what a terminal shows goes
through here.
"""

from __future__ import annotations

KEPT = {0x09, 0x0A}  # tab and newline: text, not control
BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))


def _table() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in KEPT}
    table.update({c: f"<U+{c:04X}>" for c in BIDI})
    return table


_TABLE = _table()


def visible(text: str) -> str:
    """`text` with every character a terminal would obey shown as an escape or a code point
    (one character at a time: a stream can be made visible chunk by chunk)."""
    return text.translate(_TABLE)


def is_visible(text: str) -> bool:
    """Whether `text` holds nothing `visible` would change."""
    return not any(ord(c) in _TABLE for c in text)
