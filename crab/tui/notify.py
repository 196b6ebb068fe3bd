"""Desktop notifications through the terminal's OSC 777 or OSC 9, for what
rings the bell. The text comes from other people: it is made inert here (no
control or format characters that could end the sequence or start another,
no ';' that would split OSC 777's fields) and cut short."""

from __future__ import annotations

import unicodedata

from crab.tui.state import Notify

MAX_TITLE = 60  # characters
MAX_BODY = 200


def inert(text: str, limit: int) -> str:
    """One line of printable text, at most `limit` characters."""
    out = []
    for char in text:
        kind = unicodedata.category(char)
        if kind in ("Zl", "Zp") or char in "\t\n\r":
            out.append(" ")
        elif kind.startswith("C"):  # controls (C0, DEL, C1), format, surrogates, private use
            continue
        else:
            out.append("," if char == ";" else char)
    text = " ".join("".join(out).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sequence(kind: Notify, title: str, body: str) -> str:
    """The escape sequence to write ("" when notifications are off)."""
    title, body = inert(title, MAX_TITLE), inert(body, MAX_BODY)
    if kind is Notify.OSC777:
        return f"\x1b]777;notify;{title};{body}\x07"
    if kind is Notify.OSC9:
        return f"\x1b]9;{title}: {body}\x07"
    return ""
