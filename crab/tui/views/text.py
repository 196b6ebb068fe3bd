"""Text from other people is shown, never obeyed: control and escape
sequences become visible escapes, so nobody can repaint your terminal, and
characters that draw nothing show as escapes, so nobody can hide text."""

from __future__ import annotations

import unicodedata

from prompt_toolkit.utils import get_cwidth

# Format characters (zero-width spaces and joiners, BOM, direction overrides
# and isolates: "Trojan source", tag characters), unassigned, private-use and
# surrogate code points, and the line and paragraph separators: each shows
# as its escape. Control characters (Cc) too, but for newline and tab.
_HIDDEN = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers
_ZWJ = "\u200d"
_EMOJI_PRESENTATION = "\ufe0f"


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _is_emoji(ch: str) -> bool:
    # Pictographs are "So"; skin tones are "Sk"; VS16 asks for the emoji form.
    return ch == _EMOJI_PRESENTATION or (
        ord(ch) >= 0x2000 and unicodedata.category(ch) in ("So", "Sk")
    )


def _joins_emoji(text: str, i: int) -> bool:
    """A ZWJ between two emoji (👩‍💻, 🏳️‍🌈) is part of one picture."""
    return 0 < i < len(text) - 1 and _is_emoji(text[i - 1]) and _is_emoji(text[i + 1])


def inert(text: str, emoji_joins: bool = False) -> str:
    """`emoji_joins`: keep U+200D inside emoji sequences (message text);
    names never need it (the server refuses it there)."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\t":
            out.append("    ")
        elif ch == "\n":
            out.append(ch)
        elif ch == _ZWJ and emoji_joins and _joins_emoji(text, i):
            out.append(ch)
        elif unicodedata.category(ch) in _HIDDEN or ch in _BLANK_LETTERS:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: str) -> str:
    return inert(text).replace("\n", " ")


def wrap(text: str, width: int) -> list[str]:
    """Hard-wraps inert text to `width` columns (at spaces when it can)."""
    width = max(1, width)
    rows: list[str] = []
    for paragraph in inert(text, emoji_joins=True).split("\n"):
        while len(paragraph) > width:
            cut = paragraph.rfind(" ", 0, width + 1)
            if cut <= 0:
                cut = width
            rows.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip(" ")
        rows.append(paragraph)
    return rows


def clip(text: str, width: int, emoji_joins: bool = False) -> str:
    """One line of inert text cut to `width` terminal columns (wide
    characters such as emoji and CJK take two), with "…" when cut."""
    text = inert(text, emoji_joins).replace("\n", " ")
    if get_cwidth(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = get_cwidth(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"
