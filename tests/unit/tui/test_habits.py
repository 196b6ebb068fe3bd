"""Issue 13's habits in the reducers and views: chat numbers and counts
that always fit, Alt+N, a chat list that keeps its order, the read marker,
a colour per nick, display names, completion and command usage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.utils import get_cwidth

from crab.cli import main
from crab.tui import actions as a
from crab.tui.app import ChatApp, ChatCompleter
from crab.tui.keys import Command, help_lines, key_sequence
from crab.tui.reducers.app import reduce
from crab.tui.state import Asking, ChatItem, History, Order, Person
from crab.tui.store import Store
from crab.tui.views.messages import visible_rows
from crab.tui.views.nicks import PALETTE, nick_class
from crab.tui.views.panels import header, names_panel, sidebar, usage
from tests.helpers.tui import ALICE, BOB, line, rows_text, signed_in

MARKER = "── new messages ──"


def shown(fragments: list[tuple[str, str]] | list[tuple[str, str, object]]) -> str:
    return "".join(f[1] for f in fragments)


# ---- bug 8: numbers and counts always show --------------------------------


def test_sidebar_rows_fit_their_columns_with_number_and_counts_whole() -> None:
    chats = tuple(
        ChatItem(
            10 + n, True, "a-very-long-room-name-for-the-team-" + "漢字" * n, unread=123, mentions=2
        )
        for n in range(11)
    )
    for width in (20, 26):
        rows = shown(sidebar(signed_in(chats=chats, active_chat=None), width)).split("\n")[1:12]
        for n, row in enumerate(rows, 1):
            assert get_cwidth(row) <= width, (width, row)
            assert row.endswith(" (123) @2"), row
            assert row.startswith(f"{n} # " if n <= 9 else "  # "), row


# ---- bug 18 part: Alt+N and Alt+arrows --------------------------------------


def test_alt_n_opens_the_chat_numbered_n() -> None:
    state = reduce(signed_in(), a.Key(Command.OPEN_NUMBERED, 2)).state
    assert state.active_chat == 11
    assert reduce(state, a.Key(Command.OPEN_NUMBERED, 1)).state.active_chat == 10
    # No chat 5: nothing moves.
    assert reduce(state, a.Key(Command.OPEN_NUMBERED, 5)).state.active_chat == 11


def test_alt_keys_are_esc_then_the_key_and_the_help_names_them() -> None:
    assert key_sequence("m-1") == ("escape", "1")
    assert key_sequence("m-left") == ("escape", "left")
    assert key_sequence("c-n") == ("c-n",)
    text = "\n".join(help_lines())
    assert "Alt+1..9" in text and "Alt+Left" in text and "Alt+Right" in text


# ---- a chat list that does not jump ------------------------------------------


def test_the_fixed_order_keeps_places_as_messages_come() -> None:
    chats = (ChatItem(12, True, "c"), ChatItem(10, True, "a"), ChatItem(11, True, "b"))
    state = reduce(signed_in(chats=()), a.ChatsLoaded(chats, (), ())).state
    assert [c.id for c in state.chats] == [10, 11, 12]
    state = reduce(state, a.MessageArrived(line(12, 1))).state
    assert [c.id for c in state.chats] == [10, 11, 12]
    state = reduce(state, a.ChatJoined(ChatItem(9, True, "older"))).state
    assert [c.id for c in state.chats] == [9, 10, 11, 12]


def test_the_activity_order_puts_the_newest_message_first() -> None:
    chats = (ChatItem(12, True, "c"), ChatItem(10, True, "a"), ChatItem(11, True, "b"))
    state = signed_in(chats=(), order=Order.ACTIVITY)
    state = reduce(state, a.ChatsLoaded(chats, (), ())).state
    assert [c.id for c in state.chats] == [12, 10, 11]  # as the server sorts them
    state = reduce(state, a.MessageArrived(line(11, 1))).state
    assert [c.id for c in state.chats] == [11, 12, 10]


# ---- the read marker ---------------------------------------------------------


def test_the_read_marker_stays_while_open_and_goes_when_nothing_is_new() -> None:
    lines = tuple(line(11, n, text=f"m{n}") for n in range(1, 6))
    random = ChatItem(11, True, "random", unread=2, last_message_id=5)
    state = signed_in(
        chats=(ChatItem(10, True, "general", last_message_id=2), random),
        histories={**signed_in().histories, 11: History(lines=lines, has_more=False)},
    )
    state = reduce(state, a.OpenChat(11)).state
    rows = [r.strip() for r in rows_text(visible_rows(state, 60, 20))]
    at = rows.index(MARKER)
    assert rows[at + 1].endswith("m4") and rows[at - 1].endswith("m3")
    # Read while open: new messages come below, the marker stays.
    state = reduce(state, a.MessageArrived(line(11, 6, text="m6"))).state
    assert MARKER in [r.strip() for r in rows_text(visible_rows(state, 60, 20))]
    # Away and back with nothing new: gone.
    state = reduce(state, a.OpenChat(10)).state
    state = reduce(state, a.OpenChat(11)).state
    assert MARKER not in [r.strip() for r in rows_text(visible_rows(state, 60, 20))]


# ---- a colour per nick, display names ----------------------------------------


def test_each_person_has_a_stable_colour_and_mine_stays_mine() -> None:
    assert nick_class(BOB.id) == nick_class(BOB.id)
    assert len({nick_class(n) for n in range(1, 41)}) >= len(PALETTE) - 2
    carol = Person(3, "carol", "Carol")
    state = signed_in(
        histories={10: History(lines=(line(10, 1), line(10, 2, sender=carol), line(10, 3, ALICE)))}
    )
    rows = visible_rows(state, 60, 10)
    styles = {f[1].strip(): f[0] for row in rows for f in row if f[1].strip() in ("bob", "carol")}
    assert nick_class(BOB.id) in styles["bob"] and nick_class(3) in styles["carol"]
    mine = [f[0] for row in rows for f in row if f[1].strip() == "alice"]
    assert mine == ["class:mine"]


def test_display_names_beside_usernames_in_names_and_a_wide_header() -> None:
    bob = Person(2, "bob", "Bob Builder")
    history = History(lines=(line(10, 1),), members=(ALICE, bob), has_more=False)
    state = signed_in(histories={10: history}, pane=(80, 20))
    assert "bob (Bob Builder)" in shown(names_panel(state))
    assert "alice (Alice)" in shown(header(state))
    assert "bob (Bob Builder)" in shown(header(state))
    narrow = shown(header(replace(state, pane=(40, 20))))
    assert "bob" in narrow and "Bob Builder" not in narrow


# ---- completion and usage ------------------------------------------------------


def completions(state_members: tuple[Person, ...], text: str, tab: bool = True) -> list[str]:
    state = signed_in(histories={10: History(members=state_members)})
    completer = ChatCompleter(Store(state))
    event = CompleteEvent(completion_requested=tab, text_inserted=not tab)
    document = Document(text, len(text))
    out = []
    for c in completer.get_completions(document, event):
        out.append(document.text[: len(text) + c.start_position] + c.text)
    return out


def test_tab_completes_nicks_of_the_open_chat() -> None:
    carol = Person(3, "carol", "Carol")
    members = (ALICE, BOB, carol)
    assert completions(members, "b") == ["bob: "]  # at the start: IRC's "nick: "
    assert completions(members, "hi c") == ["hi carol"]
    assert completions(members, "hi @c") == ["hi @carol"]
    assert completions(members, "hi @") == ["hi @bob", "hi @carol"]  # not me
    assert completions(members, "hi ") == []
    # While typing (no Tab) nothing pops up in text.
    assert completions(members, "hi c", tab=False) == []


def test_slash_commands_complete_with_their_usage_and_help() -> None:
    completer = ChatCompleter(Store(signed_in()))
    found = list(completer.get_completions(Document("/inv", 4), CompleteEvent(text_inserted=True)))
    assert [c.text for c in found] == ["invite", "invites"]
    assert shown(found[0].display) == "/invite USER"
    assert "invite someone" in shown(found[0].display_meta)


def test_a_typed_command_shows_its_usage_above_the_line() -> None:
    state = signed_in()
    assert shown(usage(state, "/invite ")).strip().startswith("/invite USER")
    assert "invite someone to the open room" in shown(usage(state, "/invite ca"))
    assert usage(state, "/invite") == [] and usage(state, "hello") == []
    assert usage(state, "/nosuch x") == []
    # A password that looks like a command is not described.
    assert usage(replace(state, asking=Asking.NEW_PASSWORD), "/invite x") == []


def test_the_order_is_chosen_once_and_kept_and_garbage_is_refused(tmp_path: Path) -> None:
    def started(order: str | None) -> Order:
        with create_pipe_input() as keys:
            app = ChatApp("127.0.0.1:1", tmp_path, order=order, input=keys, output=DummyOutput())
            return app.store.state.order

    assert started(None) is Order.FIXED  # the default
    assert started("activity") is Order.ACTIVITY
    assert started(None) is Order.ACTIVITY  # saved in settings.json
    assert json.loads((tmp_path / "settings.json").read_text()) == {"order": "activity"}
    (tmp_path / "settings.json").write_text('{"order": "sideways"}')
    assert started(None) is Order.FIXED  # a value this version does not know
    done = CliRunner().invoke(main, ["chat", "--order", "sideways"])
    assert done.exit_code == 2 and "sideways" in done.output
