"""The QR code drawn with half blocks reads back as segno's own modules."""

from __future__ import annotations

import segno

from crab.tui.views import qr
from tests.helpers.tui import rows_text

URLS = (
    "https://id.example.org/device?user_code=WDJB-MJHT",
    "http://127.0.0.1:41234/device?user_code=ABCD-EFGH&client_id=crab",
    "x",
)


def decoded(rows: tuple[str, ...]) -> list[list[bool]]:
    """Two module rows per terminal row, back from the characters drawn."""
    grid: list[list[bool]] = []
    for row in rows:
        grid.append([ch in "▀█" for ch in row])
        grid.append([ch in "▄█" for ch in row])
    return grid


def test_the_rows_drawn_decode_to_the_symbol_with_its_quiet_zone() -> None:
    for url in URLS:
        expected = [
            [bool(m) for m in row] for row in segno.make(url, error="l").matrix_iter(border=2)
        ]
        drawn = qr.rows(url)
        assert set("".join(drawn)) <= set(" ▀▄█")
        grid = decoded(drawn)
        # An odd last module row is paired with a light one.
        assert len(grid) - len(expected) in (0, 1)
        if len(grid) > len(expected):
            assert not any(grid[-1])
        assert grid[: len(expected)] == expected
        # The quiet zone: the outer two modules all round are light.
        assert not any(expected[0]) and not any(expected[1])
        assert not any(row[0] or row[1] or row[-1] or row[-2] for row in expected)


def test_the_formatted_text_shows_the_same_rows_dark_on_light() -> None:
    url = URLS[0]
    fragments = qr.qr_code(url)
    assert all(style in ("class:qr", "") for style, *_ in fragments)
    text = "".join(f[1] for f in fragments)
    assert tuple(text.split("\n")) == qr.rows(url)
    assert rows_text([fragments]) == ["\n".join(qr.rows(url))]


def test_the_terminal_version_wraps_each_row_in_black_on_white_and_resets() -> None:
    lines = qr.ansi(URLS[0]).splitlines()
    assert tuple(
        line.removeprefix("\x1b[30;107m").removesuffix("\x1b[0m") for line in lines
    ) == qr.rows(URLS[0])


def test_an_empty_or_overlong_url_draws_nothing() -> None:
    assert qr.rows("") == () and qr.qr_code("") == [] and qr.ansi("") == ""
    assert qr.rows("https://x/" + "a" * 100_000) == ()
    # At the limit it still draws (segno holds far more than MAX_URL).
    assert qr.rows("h" * qr.MAX_URL)
