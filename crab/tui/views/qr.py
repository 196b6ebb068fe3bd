"""A URL as a QR code drawn with half blocks: each terminal row holds two
rows of modules (▀ the upper one dark, ▄ the lower, █ both, space
neither), dark on light, inside a quiet zone of light modules, so a phone
pointed at the terminal opens the provider's page with the code filled in."""

from __future__ import annotations

import functools

from prompt_toolkit.formatted_text import StyleAndTextTuples

QUIET_ZONE = 2  # light modules around the symbol (the standard asks for 4; 2 scans on screens)
MAX_URL = 512  # longer is no sign-in page: no code drawn (and segno's largest holds ~2,900)

# (upper module dark, lower module dark) -> the character that draws them
_CELLS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def modules(url: str) -> list[list[bool]]:
    """The symbol's modules (True: dark), quiet zone included."""
    # Imported when a code is drawn: segno's ~25 ms stay off crab chat's first paint.
    import segno

    symbol = segno.make(url, error="l")
    return [[bool(m) for m in row] for row in symbol.matrix_iter(border=QUIET_ZONE)]


@functools.lru_cache(maxsize=4)  # drawn on every repaint of the code view: ~3 ms to encode
def rows(url: str) -> tuple[str, ...]:
    """The QR code as lines of half blocks (an odd last module row is paired
    with a light one); none for an empty or overlong URL."""
    if not url or len(url) > MAX_URL:
        return ()
    grid = modules(url)
    if len(grid) % 2:
        grid.append([False] * len(grid[0]))
    return tuple(
        "".join(_CELLS[upper, lower] for upper, lower in zip(top, bottom, strict=True))
        for top, bottom in zip(grid[::2], grid[1::2], strict=True)
    )


def qr_code(url: str) -> StyleAndTextTuples:
    """rows() as formatted text: dark modules in the foreground colour on a
    light background, whatever the terminal's own colours (class:qr)."""
    out: StyleAndTextTuples = []
    for line in rows(url):
        out += [("class:qr", line), ("", "\n")]
    return out[:-1]


def ansi(url: str) -> str:
    """rows() for a terminal outside the app (`crab login --sso`): black on
    bright white with SGR codes, reset at the end of each line."""
    return "".join(f"\x1b[30;107m{line}\x1b[0m\n" for line in rows(url))
