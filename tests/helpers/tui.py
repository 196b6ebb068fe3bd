"""Client states to start reducer and view tests from."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from prompt_toolkit.formatted_text import StyleAndTextTuples

from crab.tui import actions as a
from crab.tui.state import AppState, ChatItem, History, Line, Person, Screen

ALICE = Person(1, "alice", "Alice")
BOB = Person(2, "bob", "Bob")
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def line(chat_id: int, id: int, sender: Person = BOB, text: str = "hi") -> Line:
    return Line(chat_id, id, sender, text, T0, f"c{id}")


def submit(text: str) -> a.Submit:
    """Enter on the message line, as the app stamps it."""
    return a.Submit(text, T0, f"m-{text}")


def signed_in(**changes: object) -> AppState:
    room = ChatItem(10, True, "general", last_message_id=2)
    other = ChatItem(11, True, "random", last_message_id=0)
    base = AppState(
        server="s:1",
        screen=Screen.CHATS,
        me=ALICE,
        chats=(room, other),
        active_chat=10,
        histories={10: History(lines=(line(10, 1), line(10, 2)), has_more=False)},
    )
    return replace(base, **changes)


def rows_text(rows: list[StyleAndTextTuples]) -> list[str]:
    """What the rows show (escape sequences, which take no columns, left out)."""
    return ["".join(f[1] for f in row if "[ZeroWidthEscape]" not in f[0]) for row in rows]
