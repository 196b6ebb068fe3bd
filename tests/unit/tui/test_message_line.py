"""The message line's reducer is pure: the time and the client message id of
a sent line come from the Submit action, which the app stamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.app import submitted
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, ChatItem, Person, Screen

ALICE = Person(1, "alice", "Alice")
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def in_a_room() -> AppState:
    room = ChatItem(10, True, "general")
    return AppState(server="s:1", screen=Screen.CHATS, me=ALICE, chats=(room,), active_chat=10)


def test_the_same_state_and_action_give_the_same_update() -> None:
    state = in_a_room()
    action = a.Submit("hello", T0, "m-1")
    first, second = reduce(state, action), reduce(state, action)
    assert first == second
    assert first.state.outbox == second.state.outbox and first.effects == second.effects


def test_a_sent_line_takes_its_time_and_id_from_the_action() -> None:
    later = T0 + timedelta(minutes=5)
    update = reduce(in_a_room(), a.Submit("hello", later, "m-42"))
    (line,) = update.state.outbox
    assert line.sent_at == later and line.client_message_id == "m-42"
    assert line.chat_id == 10 and line.sender == ALICE and line.pending
    assert update.effects == (fx.Send(line),)


def test_a_slash_command_ignores_the_stamp() -> None:
    one = reduce(in_a_room(), a.Submit("/create ops", T0, "m-1"))
    other = reduce(in_a_room(), a.Submit("/create ops", T0 + timedelta(1), "m-2"))
    assert one == other and one.effects == (fx.CreateRoom("ops"),)


def test_the_app_stamps_each_enter_with_a_new_id_and_the_time_now() -> None:
    before = datetime.now(UTC)
    first, second = submitted("hi"), submitted("hi")
    assert isinstance(first, a.Submit) and isinstance(second, a.Submit)
    assert first.client_message_id != second.client_message_id
    assert before <= first.sent_at <= second.sent_at <= datetime.now(UTC)
