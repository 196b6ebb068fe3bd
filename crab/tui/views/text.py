"""Text from other people is shown, never obeyed: control and escape
sequences become visible escapes, so nobody can repaint your terminal, and
characters that draw nothing show as escapes, so nobody can hide text."""

from __future__ import annotations

import functools
import unicodedata

from prompt_toolkit.utils import get_cwidth

# Format characters (zero-width spaces and joiners, BOM, direction overrides
# and isolates: "Trojan source", tag characters), unassigned, private-use and
# surrogate code points: each shows as its escape. Control characters (Cc)
# too, but for newline and tab. The line and paragraph separators (U+2028,
# U+2029) break the line, as a newline does, wherever text is drawn.
_HIDDEN = frozenset({"Cc", "Cf", "Cn", "Co", "Cs"})
_BREAKS = frozenset("\u2028\u2029")
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers
_ZWJ = "\u200d"
_EMOJI_PRESENTATION = "\ufe0f"
# Width rule: each emoji of a sequence is drawn on its own. Terminals
# disagree on joined sequences (tmux 3.3 draws man+ZWJ+woman in 2 columns,
# others in 4) and on what U+FE0F does to a text-style symbol (1 or 2
# columns); prompt_toolkit counts each character with wcwidth. When the
# terminal draws fewer columns than counted, the row shifts and old
# characters stay at its end. So the joiners and the variation selectors
# are not sent: every terminal then draws what wcwidth counts (a family
# shows as its three people, a heart in its text form). Skin tone
# modifiers stay: wcwidth and tmux both count them as a 2-column swatch.
_NOT_DRAWN = str.maketrans("", "", "\u200d\ufe0e\ufe0f")


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
        elif ch == "\n" or ch in _BREAKS:
            out.append("\n")
        elif ch == _ZWJ and emoji_joins and _joins_emoji(text, i):
            out.append(ch)
        elif unicodedata.category(ch) in _HIDDEN or ch in _BLANK_LETTERS:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: str) -> str:
    return inert(text).replace("\n", " ")


def drawn(text: str) -> str:
    """Message text as it goes to the terminal: inert, and without the
    characters whose width terminals disagree on (see _NOT_DRAWN)."""
    return inert(text, emoji_joins=True).translate(_NOT_DRAWN)


def clusters(text: str) -> list[str]:
    """Characters with the zero-width ones (combining marks) that follow
    them: prompt_toolkit draws such a group in one cell, never apart."""
    out: list[str] = []
    for ch in text:
        if out and get_cwidth(ch) == 0:
            out[-1] += ch
        else:
            out.append(ch)
    return out


def wrap(text: str, width: int) -> list[str]:
    """Wraps message text to `width` terminal columns (wide characters such
    as CJK and emoji take two), at spaces when it can; never drops text."""
    return list(_wrapped(text, max(2, width)))


@functools.lru_cache(maxsize=4096)  # a screen or two of messages, at a width or two
def _wrapped(text: str, width: int) -> tuple[str, ...]:
    """wrap's work, kept: PageUp and every redraw wrap the same lines again."""
    rows: list[str] = []
    for paragraph in drawn(text).split("\n"):
        row: list[str] = []
        used = 0
        space = -1  # where in `row` the last space is
        for cell in clusters(paragraph):
            cell_width = get_cwidth(cell)
            if used + cell_width > width and row:
                if space > 0:
                    rows.append("".join(row[:space]))
                    row = row[space + 1 :]
                else:
                    rows.append("".join(row))
                    row = []
                used = sum(get_cwidth(c) for c in row)
                space = max((i for i, c in enumerate(row) if c == " "), default=-1)
                if cell == " " and not row:
                    continue  # a space at a break is the break
            row.append(cell)
            used += cell_width
            if cell == " ":
                space = len(row) - 1
        rows.append("".join(row))
    return tuple(rows)


def clip(text: str, width: int, emoji_joins: bool = False) -> str:
    """One line of inert text cut to `width` terminal columns (wide
    characters such as emoji and CJK take two), with "…" when cut."""
    text = (drawn(text) if emoji_joins else inert(text)).replace("\n", " ")
    if get_cwidth(text) <= width:
        return text
    out, used = [], 0
    for cell in clusters(text):
        w = get_cwidth(cell)
        if used + w > width - 1:
            break
        out.append(cell)
        used += w
    return "".join(out) + "…"
