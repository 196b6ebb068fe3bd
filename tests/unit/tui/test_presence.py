"""Receipts, typing and presence in the client: the pure reducers and the
views, no event loop."""

from __future__ import annotations

from dataclasses import replace

from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.from_server import action
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, ChatItem, Focus, History, Person, PresenceItem, PresenceState
from crab.tui.views.messages import typing_text, visible_rows
from crab.tui.views.panels import names_panel, presence_mark, sidebar
from tests.helpers.tui import ALICE, BOB, T0, line, rows_text, signed_in

CAROL = Person(3, "carol", "Carol")


def talk() -> AppState:
    """general: 1 bob "hi", 2 alice "mine", 3 bob "later"; all three members."""
    lines = (line(10, 1), line(10, 2, ALICE, "mine"), line(10, 3, BOB, "later"))
    history = History(lines=lines, has_more=False, members=(ALICE, BOB, CAROL))
    return signed_in(histories={10: history})


def rows(state: AppState) -> list[str]:
    return rows_text(visible_rows(state, 80, 30))


def test_seen_by_is_under_the_newest_message_each_other_member_read() -> None:
    state = reduce(talk(), a.ReadMoved(10, CAROL.id, 2)).state
    state = reduce(state, a.ReadMoved(10, ALICE.id, 3)).state  # me: never shown
    shown = rows(state)
    at = next(i for i, r in enumerate(shown) if r.endswith("mine"))
    assert shown[at + 1].strip() == "seen by carol"
    assert sum("seen by" in r for r in shown) == 1
    # Forward only: an older position (a late answer) changes nothing.
    assert reduce(state, a.ReadMoved(10, CAROL.id, 1)).state.history(10).read[CAROL.id] == 2
    state = reduce(state, a.ReadMoved(10, CAROL.id, 3)).state
    shown = rows(state)
    assert shown[-1].strip() == "seen by carol" and "later" in shown[-2]


def test_a_sender_has_read_their_own_message_but_is_not_seen_under_it() -> None:
    state = reduce(talk(), a.MessageArrived(line(10, 4, CAROL, "new"))).state
    assert state.history(10).read[CAROL.id] == 4
    assert not any("seen by" in r for r in rows(state))


def test_receipt_frames_become_actions() -> None:
    frame = pb.ServerFrame(read=pb.ReadReceipt(chat_id=10, user_id=3, last_read_id=7))
    assert action(frame, ALICE.id) == a.ReadMoved(10, 3, 7)


def test_typing_shows_until_its_own_timer_or_the_message() -> None:
    update = reduce(talk(), a.TypingSeen(10, BOB))
    assert update.effects == (fx.ExpireTyping(1, 5.0),)
    again = reduce(update.state, a.TypingSeen(10, BOB))  # news: a new timer
    state = again.state
    assert rows(state)[-1].strip() == "bob is typing..."
    assert reduce(state, a.TypingExpired(1)).state.typing == state.typing  # the old timer
    assert reduce(state, a.TypingExpired(2)).state.typing == ()
    state = reduce(state, a.MessageArrived(line(10, 4, BOB, "done"))).state
    assert state.typing == () and "typing" not in rows(state)[-1]
    assert reduce(talk(), a.TypingSeen(10, ALICE)).state.typing == ()  # never myself


def test_typing_text_names_up_to_three() -> None:
    state = talk()
    for who in (BOB, CAROL):
        state = reduce(state, a.TypingSeen(10, who)).state
    assert typing_text(state, 10) == "bob and carol are typing..."
    assert typing_text(state, 11) == ""
    more = [Person(n, f"u{n}", "") for n in range(20, 23)]
    for who in more:
        state = reduce(state, a.TypingSeen(10, who)).state
    assert typing_text(state, 10) == "5 people are typing..."


def test_typing_a_message_asks_for_a_notice_but_not_a_command_or_an_edit() -> None:
    assert reduce(talk(), a.InputChanged("hel")).effects == (fx.SendTyping(10),)
    assert reduce(talk(), a.InputChanged("/names")).effects == ()
    assert reduce(talk(), a.InputChanged("   ")).effects == ()
    assert reduce(replace(talk(), editing=2), a.InputChanged("mine!")).effects == ()
    search = reduce(replace(talk(), focus=Focus.SEARCH), a.InputChanged("bo")).effects
    assert not any(isinstance(e, fx.SendTyping) for e in search)


def test_presence_marks_in_names_and_beside_personal_conversations() -> None:
    direct = ChatItem(12, False, "bob")
    state = replace(talk(), chats=(*talk().chats, direct))
    assert presence_mark(state, BOB) == ""  # not known yet
    state = reduce(
        state,
        a.PeersLoaded({12: BOB}, {BOB.id: PresenceItem(PresenceState.ONLINE)}),
    ).state
    assert " ● bob" in "".join(f[1] for f in sidebar(state))
    state = reduce(state, a.PresenceChanged(CAROL.id, PresenceItem(PresenceState.AWAY))).state
    gone = PresenceItem(PresenceState.OFFLINE, T0)
    state = reduce(state, a.PresenceChanged(BOB.id, gone)).state
    listed = "".join(f[1] for f in names_panel(state))
    assert "◐ carol" in listed and "○ bob" in listed and "last seen" in listed
    assert " ○ bob" in "".join(f[1] for f in sidebar(state))


def test_a_late_snapshot_does_not_rub_out_when_someone_was_last_seen() -> None:
    # Read while bob was leaving: offline, the time not yet written.
    state = reduce(talk(), a.PresenceChanged(BOB.id, PresenceItem(PresenceState.OFFLINE, T0))).state
    late = {BOB.id: PresenceItem(PresenceState.OFFLINE)}
    state = reduce(state, a.PresenceLoaded(10, {}, late)).state
    assert state.presence[BOB.id] == PresenceItem(PresenceState.OFFLINE, T0)
    state = reduce(state, a.PeersLoaded({12: BOB}, late)).state
    assert state.presence[BOB.id] == PresenceItem(PresenceState.OFFLINE, T0)
    # A snapshot that says more is taken whole.
    back = {BOB.id: PresenceItem(PresenceState.ONLINE)}
    assert reduce(state, a.PresenceLoaded(10, {}, back)).state.presence[BOB.id] == back[BOB.id]


def test_presence_frames_become_actions() -> None:
    frame = pb.ServerFrame(
        presence=pb.Presence(user_id=2, state=pb.PresenceState.OFFLINE, last_seen_at=T0)
    )
    assert action(frame, ALICE.id) == a.PresenceChanged(2, PresenceItem(PresenceState.OFFLINE, T0))
    online = pb.ServerFrame(presence=pb.Presence(user_id=2, state=pb.PresenceState.ONLINE))
    assert action(online, ALICE.id) == a.PresenceChanged(2, PresenceItem(PresenceState.ONLINE))
