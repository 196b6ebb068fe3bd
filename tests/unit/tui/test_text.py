"""Invisible characters from others show as escapes in every view, except
the joiner inside an emoji sequence in message text (it is part of one
picture)."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui.reducers.app import reduce
from crab.tui.state import ChatItem, Person
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import header, sidebar
from crab.tui.views.text import inert, one_line
from tests.helpers.tui import line, rows_text, signed_in

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man, woman, girl
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"
TECHNOLOGIST = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # woman, skin tone, laptop


def test_zero_width_and_format_characters_show_as_escapes() -> None:
    assert inert("ali\u200bce") == "ali\\u200bce"
    assert inert("a\u200cb\u200dc\u2060d\ufeffe") == "a\\u200cb\\u200dc\\u2060d\\ufeffe"
    assert inert("tag\U000e0041") == "tag\\U000e0041"
    assert inert("line\u2028para\u2029") == "line\\u2028para\\u2029"
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
    assert shown.endswith(f"pay to ali\\u200bce {FAMILY}")


def test_names_with_hidden_characters_are_drawn_with_escapes() -> None:
    room = ChatItem(10, True, "ops\u200b\u202e", last_message_id=2)
    state = replace(signed_in(), chats=(room,))
    assert " # ops\\u200b\\u202e\n" in "".join(text for _, text in sidebar(state))
    assert "ops\\u200b\\u202e" in "".join(text for _, text in header(state))
    eve = Person(3, "al\u200bice", "Alice\u2066")
    state = reduce(state, a.MessageArrived(line(10, 3, sender=eve, text="hi"))).state
    assert "al\\u200bice" in rows_text(visible_rows(state, 80, 20))[-1]
