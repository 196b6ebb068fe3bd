"""Invisible characters from others show as escapes in every view, except
the joiner inside an emoji sequence in message text (it is part of one
picture)."""

from __future__ import annotations

from dataclasses import replace

from prompt_toolkit.utils import get_cwidth

from crab.tui import actions as a
from crab.tui.reducers.app import reduce
from crab.tui.state import ChatItem, Person
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import header, sidebar
from crab.tui.views.text import clip, drawn, inert, one_line, wrap
from tests.helpers.tui import line, rows_text, signed_in

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man, woman, girl
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"
TECHNOLOGIST = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # woman, skin tone, laptop


def test_zero_width_and_format_characters_show_as_escapes() -> None:
    assert inert("ali\u200bce") == "ali\\u200bce"
    assert inert("a\u200cb\u200dc\u2060d\ufeffe") == "a\\u200cb\\u200dc\\u2060d\\ufeffe"
    assert inert("tag\U000e0041") == "tag\\U000e0041"
    assert inert("private\ue000") == "private\\ue000"
    assert inert("filler\u3164") == "filler\\u3164"


def test_emoji_sequences_keep_their_joiner_in_message_text_only() -> None:
    for emoji in (FAMILY, RAINBOW_FLAG, TECHNOLOGIST):
        assert inert(f"hi {emoji}!", emoji_joins=True) == f"hi {emoji}!"
        assert "\\u200d" in one_line(emoji)
    # A joiner between letters is no picture: escaped even in message text.
    assert inert("a\u200db", emoji_joins=True) == "a\\u200db"
    assert inert("\u200d\U0001f308", emoji_joins=True) == "\\u200d\U0001f308"


def test_a_message_with_hidden_characters_is_drawn_with_escapes() -> None:
    text = f"pay to ali\u200bce {FAMILY}"
    state = reduce(signed_in(), a.MessageArrived(line(10, 3, text=text))).state
    shown = rows_text(visible_rows(state, 80, 20))[-1]
    # The family is drawn as its three people (the width rule in text.py).
    assert shown.endswith("pay to ali\\u200bce \U0001f468\U0001f469\U0001f467")


def test_names_with_hidden_characters_are_drawn_with_escapes() -> None:
    room = ChatItem(10, True, "ops\u200b\u202e", last_message_id=2)
    state = replace(signed_in(), chats=(room,))
    assert " # ops\\u200b\\u202e\n" in "".join(text for _, text in sidebar(state))
    assert "ops\\u200b\\u202e" in "".join(text for _, text in header(state))
    eve = Person(3, "al\u200bice", "Alice\u2066")
    state = reduce(state, a.MessageArrived(line(10, 3, sender=eve, text="hi"))).state
    assert "al\\u200bice" in rows_text(visible_rows(state, 80, 20))[-1]


def test_wide_text_wraps_by_terminal_columns_and_loses_nothing() -> None:
    text = "".join(chr(0x4E00 + i) for i in range(120))  # 120 CJK, 240 columns
    rows = wrap(text, 61)
    assert "".join(rows) == text
    assert all(get_cwidth(row) <= 61 for row in rows) and get_cwidth(rows[0]) == 60
    state = reduce(signed_in(), a.MessageArrived(line(10, 3, text=text))).state
    shown = rows_text(visible_rows(state, 80, 20))
    body = [row[19:] for row in shown[-4:]]
    assert "".join(body) == text and all(get_cwidth(row) <= 80 for row in shown)


def test_wrapping_breaks_at_spaces_by_columns() -> None:
    assert wrap("日本語 テキスト です", 9) == ["日本語", "テキスト", "です"]
    assert wrap("ab\u0301cd", 3) == ["ab\u0301c", "d"]  # an accent stays on its letter


def test_emoji_sequences_are_drawn_as_wide_as_counted() -> None:
    """The rule (text.py): joiners and variation selectors are not drawn,
    so a row is as wide as prompt_toolkit counts it in every terminal."""
    for emoji in (FAMILY, RAINBOW_FLAG, TECHNOLOGIST, "\u2764\ufe0f"):
        shown = drawn(f"B2 {emoji} Z")
        assert "\u200d" not in shown and "\ufe0f" not in shown
        assert get_cwidth(shown) == sum(get_cwidth(ch) for ch in shown)
    for width in range(4, 12):
        for row in wrap(f"B2 {FAMILY} Z" * 3, width):
            assert get_cwidth(row) <= width
    assert get_cwidth(clip(f"{FAMILY}{FAMILY}", 9, emoji_joins=True)) <= 9


def test_line_and_paragraph_separators_break_the_line() -> None:
    assert wrap("one\u2028two\u2029three", 20) == ["one", "two", "three"]
    assert one_line("one\u2028two") == "one two"
    state = reduce(signed_in(), a.MessageArrived(line(10, 3, text="one\u2028two"))).state
    shown = rows_text(visible_rows(state, 80, 20))
    assert shown[-2].endswith("one") and shown[-1].strip() == "two"
