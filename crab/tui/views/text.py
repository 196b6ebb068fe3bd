"""Text from other people is shown, never obeyed: control and escape
sequences become visible escapes, so nobody can repaint your terminal."""

from __future__ import annotations

import unicodedata

# Direction overrides and isolates can make text read differently from what
# it is ("Trojan source"); show them as escapes too.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def inert(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\t":
            out.append("    ")
        elif (ch != "\n" and unicodedata.category(ch) == "Cc") or ch in _BIDI:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: str) -> str:
    return inert(text).replace("\n", " ")


def wrap(text: str, width: int) -> list[str]:
    """Hard-wraps inert text to `width` columns (at spaces when it can)."""
    width = max(1, width)
    rows: list[str] = []
    for paragraph in inert(text).split("\n"):
        while len(paragraph) > width:
            cut = paragraph.rfind(" ", 0, width + 1)
            if cut <= 0:
                cut = width
            rows.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip(" ")
        rows.append(paragraph)
    return rows
