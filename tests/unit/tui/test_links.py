"""Addresses in messages as OSC 8 hyperlinks: a wrapped address stays one
link (issue 13: copying a wrapped URL took the padding between rows)."""

from __future__ import annotations

from dataclasses import replace

from crab.tui.state import History
from crab.tui.views.links import ESCAPE, linked, spans
from crab.tui.views.messages import visible_rows
from crab.tui.views.text import wrap
from tests.helpers.tui import ALICE, line, rows_text, signed_in

URL = "https://example.org/a/very/long/path/that/wraps?q=1&r=2"


def test_an_address_wrapped_over_rows_is_one_link_with_the_whole_address() -> None:
    text = f"see {URL}, then reply"
    parts = wrap(text, 20)
    rows = linked(parts, text, "", "10-7")
    opens = [f[1] for row in rows for f in row if f[0] == ESCAPE and f[1] != "\x1b]8;;\x1b\\"]
    assert len(opens) >= 3  # the address is on three rows or more
    assert set(opens) == {f"\x1b]8;id=crab-10-7-0;{URL}\x1b\\"}  # one id, the whole address
    shown = ["".join(f[1] for f in row if f[0] != ESCAPE) for row in rows]
    assert shown == parts  # the columns are what wrap made: nothing added
    linked_text = "".join(f[1] for row in rows for f in row if "class:link" in f[0])
    assert linked_text == URL  # the comma after it is not part of it


def test_only_printable_ascii_addresses_are_linked() -> None:
    assert spans("http://") == [] and spans("nothing here") == []
    assert spans("(https://a.example/x).") == [(1, 20)]
    # Anything outside printable ASCII ends the address: it cannot carry an
    # escape or look-alike into the sequence.
    text = "https://a.example/\u202eevil"
    ((start, end),) = spans(text)
    assert text[start:end] == "https://a.example/"
    assert spans("https://" + "x" * 3000) == []  # too long: plain text


def test_the_message_pane_draws_the_link_and_shows_the_same_text() -> None:
    message = replace(line(10, 3, ALICE, f"look: {URL}"))
    state = signed_in(histories={10: History(lines=(message,), has_more=False)})
    rows = visible_rows(state, 40, 10)
    assert any(f[0] == ESCAPE for row in rows for f in row)
    shown = "".join(rows_text(rows))
    assert "look:" in shown and "\x1b" not in shown
