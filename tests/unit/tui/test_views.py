"""The message pane and the help at any size: scrolled back the view stays
put and says what waits below; narrow panes still show every message; the
help scrolls."""

from __future__ import annotations

from dataclasses import replace

from prompt_toolkit.utils import get_cwidth

from crab.tui import actions as a
from crab.tui.demo import big_chat
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, Focus, History
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import help_panel, help_rows
from tests.helpers.tui import line, rows_text, signed_in


def chat_of(count: int, **changes: object) -> AppState:
    lines = tuple(line(10, i, text=f"message {i}") for i in range(1, count + 1))
    return signed_in(histories={10: History(lines=lines, has_more=False)}, **changes)


def test_scrolled_back_the_view_stays_on_the_same_messages_as_others_arrive() -> None:
    state = reduce(chat_of(100, pane=(80, 10)), a.Key("scroll_up")).state
    before = rows_text(visible_rows(state, 80, 10))
    for i in range(101, 104):
        state = reduce(state, a.MessageArrived(line(10, i, text=f"message {i}"))).state
    after = rows_text(visible_rows(state, 80, 10))
    assert after[:-1] == before[:-1]
    assert after[-1] == "↓ 3 new messages below (Ctrl+End: newest)"
    newest = reduce(state, a.Key("scroll_end")).state
    assert newest.scroll == 0 and newest.new_below == 0
    assert rows_text(visible_rows(newest, 80, 10))[-1].endswith("message 103")


def test_at_the_newest_message_arrivals_show_at_the_bottom() -> None:
    state = reduce(chat_of(5), a.MessageArrived(line(10, 6, text="message 6"))).state
    assert state.scroll == 0 and rows_text(visible_rows(state, 80, 10))[-1].endswith("message 6")


def test_a_narrow_pane_still_shows_every_message() -> None:
    text = "a long message that has to wrap on a narrow pane"
    state = reduce(chat_of(3), a.MessageArrived(line(10, 4, text=text))).state
    for width in (20, 30, 39, 45, 59):
        shown = rows_text(visible_rows(state, width, 12))
        assert all(get_cwidth(row) <= width for row in shown), width
        words = " ".join(shown).split()
        assert all(word in words for word in text.split()), (width, shown)
        assert any("bob" in row for row in shown) and "message 3" in " ".join(shown)


def test_the_help_scrolls_and_says_so() -> None:
    state = reduce(chat_of(3, pane=(80, 10)), a.Key("help")).state
    assert state.focus is Focus.HELP
    first = rows_text(help_panel(state, 80, 10))
    assert "PgDn" in first[0] and "Esc" in first[0] and first[-1].startswith("↓")
    state = reduce(state, a.Key("select_down")).state
    assert rows_text(help_panel(state, 80, 10))[1] == first[2]
    for _ in range(50):
        state = reduce(state, a.Key("scroll_down")).state
    last = rows_text(help_panel(state, 80, 10))
    assert last[-1] == help_rows(80)[-1] and "/quit" in last[-1]
    state = reduce(state, a.Key("scroll_up")).state
    assert state.help_scroll == len(help_rows(80)) - 9 - 8
    # The help's keys leave the message history alone.
    assert state.scroll == 0


def test_the_chat_list_hides_when_narrow_and_f6_toggles_it() -> None:
    wide = chat_of(3, columns=120)
    assert wide.sidebar_shown()
    assert not reduce(wide, a.Key("toggle_sidebar")).state.sidebar_shown()
    narrow = reduce(chat_of(3), a.PaneResized(40, 20, 40)).state
    assert not narrow.sidebar_shown() and narrow.pane == (40, 20)
    assert reduce(narrow, a.Key("toggle_sidebar")).state.sidebar_shown()


def test_paging_through_wrapped_messages_of_many_days_shows_every_row() -> None:
    """Messages of several rows, one taller than any pane, and day lines:
    PgUp until it stops shows every row of the chat on the way and ends
    with the chat's first row on the pane's top row; PgDn comes back to
    the newest, also showing every row."""
    chat = big_chat(300)
    history = chat.history(1)
    tall = replace(history.lines[150], text=" ".join(f"w{i}" for i in range(400)))
    lines = (*history.lines[:150], tall, *history.lines[151:])
    chat = replace(chat, histories={1: replace(history, lines=lines)})
    for pane in ((80, 20), (100, 35), (40, 10), (60, 7)):
        state = replace(chat, pane=pane)
        newest = rows_text(visible_rows(state, *pane))
        everything = set(rows_text(visible_rows(state, pane[0], 100_000))) - {""}
        seen = set(newest)
        while True:
            up = reduce(state, a.Key("scroll_up")).state
            if (up.scroll, up.scroll_cut) == (state.scroll, state.scroll_cut):
                break
            state = up
            seen |= set(rows_text(visible_rows(state, *pane)))
        assert rows_text(visible_rows(state, *pane))[0] == "This is the beginning of the chat."
        assert everything <= seen, (pane, sorted(everything - seen)[:5])
        seen = set(rows_text(visible_rows(state, *pane)))
        while state.scroll or state.scroll_cut != (0, 0):
            state = reduce(state, a.Key("scroll_down")).state
            seen |= set(rows_text(visible_rows(state, *pane)))
        assert rows_text(visible_rows(state, *pane)) == newest
        assert everything <= seen, pane
