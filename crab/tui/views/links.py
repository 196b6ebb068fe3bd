"""Web addresses in messages as terminal hyperlinks (OSC 8). A long address
wraps over several rows, and copying it across them takes the padding and
line ends too; as a hyperlink each of its pieces carries the same id and
the whole address, so a click or the terminal's "copy link" gives it whole.
Terminals without OSC 8 ignore the sequences (they take no columns)."""

from __future__ import annotations

import re

from prompt_toolkit.formatted_text import StyleAndTextTuples

# Printable ASCII only: nothing in an address can end the sequence early
# (message text is inert already: no ESC, no BEL), and no look-alikes.
URL = re.compile(r"https?://[!-~]+")
TRAILING = ".,;:!?)]}'\""  # sentence punctuation after an address is not part of it
MAX_URL = 2000  # longer ones stay plain text (terminals cap what they keep)
ESCAPE = "[ZeroWidthEscape]"  # prompt_toolkit writes such fragments raw, zero width


def spans(text: str) -> list[tuple[int, int]]:
    """Where the addresses are in `text`."""
    found = []
    for match in URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in TRAILING:
            end -= 1
        if len(text[start:end]) > len("https://") and end - start <= MAX_URL:
            found.append((start, end))
    return found


def linked(parts: list[str], text: str, style: str, key: str) -> list[StyleAndTextTuples]:
    """The rows of `text` (as `parts`, wrap's rows of it, in order), with each
    piece of an address inside an OSC 8 hyperlink whose id is `key` and the
    address's number: the pieces of one address are one link."""
    found = spans(text)
    if not found:
        return [[(style, part)] for part in parts]
    rows: list[StyleAndTextTuples] = []
    at = 0
    for part in parts:
        start = text.find(part, at) if part else at
        if start < 0:  # not where it should be: drawn plain, never wrong
            rows.append([(style, part)])
            continue
        end = at = start + len(part)
        row: StyleAndTextTuples = []
        done = 0  # of `part`
        for n, (a, b) in enumerate(found):
            low, high = max(a, start), min(b, end)
            if low >= high:
                continue
            if low - start > done:
                row.append((style, part[done : low - start]))
            row.append((ESCAPE, f"\x1b]8;id=crab-{key}-{n};{text[a:b]}\x1b\\"))
            row.append((f"{style} class:link".strip(), part[low - start : high - start]))
            row.append((ESCAPE, "\x1b]8;;\x1b\\"))
            done = high - start
        if done < len(part):
            row.append((style, part[done:]))
        rows.append(row)
    return rows
