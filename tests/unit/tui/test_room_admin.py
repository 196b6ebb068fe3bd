"""Room admin and profile in the client: the slash commands' reducers and
the frames that keep names, topics and members current. Pure functions."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import help_lines
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, Asking, ChatItem, Focus, Person
from crab.tui.views.panels import header, names_panel
from tests.helpers.tui import ALICE, BOB, line, signed_in, submit

CAROL = Person(3, "carol", "Carol")


def owned(owner: Person = ALICE) -> AppState:
    """Alice's view of room 10 (owned by `owner`) with Bob and Carol in it."""
    state = signed_in()
    room = replace(state.chats[0], owner_id=owner.id)
    history = replace(state.history(10), members=(ALICE, BOB, CAROL))
    return replace(state, chats=(room, *state.chats[1:]), histories={10: history})


def text_of(fragments: list[tuple[str, str]]) -> str:
    return "".join(f[1] for f in fragments)


def test_the_owner_renames_sets_the_topic_and_kicks() -> None:
    state = owned()
    assert reduce(state, submit("/rename ops team")).effects == (fx.RenameRoom(10, "ops team"),)
    assert reduce(state, submit("/topic deploys friday")).effects == (
        fx.SetTopic(10, "deploys friday"),
    )
    assert reduce(state, submit("/topic")).effects == (fx.SetTopic(10, ""),)  # clears it
    assert reduce(state, submit("/kick @Bob")).effects == (fx.RemoveMember(10, 2, "bob"),)


def test_others_get_a_clear_message_and_no_call() -> None:
    state = owned(owner=BOB)
    for text in ("/rename x", "/topic x", "/kick carol"):
        update = reduce(state, submit(text))
        assert update.effects == () or all(isinstance(e, fx.ExpireNotice) for e in update.effects)
        assert "only the room's owner (bob)" in update.state.notice


def test_kick_needs_a_member_who_is_not_me() -> None:
    state = owned()
    for text, says in (
        ("/kick", "usage"),
        ("/kick dave", "no member named dave"),
        ("/kick alice", "cannot remove yourself"),
    ):
        update = reduce(state, submit(text))
        assert says in update.state.notice
        assert not [e for e in update.effects if not isinstance(e, fx.ExpireNotice)]


def test_admin_needs_a_room() -> None:
    direct = ChatItem(12, False, "bob")
    state = replace(owned(), chats=(direct,), active_chat=12)
    assert "open a room first" in reduce(state, submit("/rename x")).state.notice


def test_chat_updated_renames_the_sidebar_and_the_header() -> None:
    state = owned()
    state = reduce(state, a.ChatUpdated(10, "ops", "deploys friday", ALICE.id)).state
    room = state.chat(10)
    assert room is not None and (room.name, room.topic) == ("ops", "deploys friday")
    assert "ops" in state.notice and "deploys friday" in state.notice
    shown = text_of(header(state))
    assert "#ops" in shown and "deploys friday" in shown
    again = reduce(state, a.ChatUpdated(10, "ops", "deploys friday", ALICE.id)).state
    assert again is state  # our own answer, then the frame: nothing new


def test_member_removed_leaves_the_member_list() -> None:
    state = reduce(owned(), a.MemberRemoved(10, BOB, ALICE)).state
    assert [p.id for p in state.history(10).members] == [ALICE.id, CAROL.id]
    assert state.notice == "alice removed bob from #general"


def test_being_removed_closes_the_chat_with_a_notice() -> None:
    state = reduce(owned(), a.ChatLeft(10)).state
    assert state.chat(10) is None and state.active_chat == 11
    assert "no longer in general" in state.notice


def test_a_new_display_name_shows_on_members_and_messages() -> None:
    state = owned()
    state = replace(
        state, histories={10: replace(state.history(10), lines=(line(10, 1), line(10, 2, ALICE)))}
    )
    renamed = Person(BOB.id, "bob", "Robert")
    state = reduce(state, a.PersonUpdated(renamed)).state
    history = state.history(10)
    assert [p.display_name for p in history.members] == ["Alice", "Robert", "Carol"]
    assert [x.sender.display_name for x in history.lines] == ["Robert", "Alice"]
    me = reduce(state, a.PersonUpdated(Person(ALICE.id, "alice", "Al"))).state.me
    assert me is not None and me.display_name == "Al"


def test_names_lists_members_with_the_owner_marked() -> None:
    state = reduce(owned(), submit("/names")).state
    assert state.focus is Focus.NAMES
    shown = text_of(names_panel(state))
    assert " * alice" in shown and "   bob" in shown and "carol" in shown
    assert reduce(state, a.Key("back")).state.focus is Focus.INPUT
    assert reduce(owned(), a.Key("names")).state.focus is Focus.NAMES


def test_nick_asks_for_the_new_name() -> None:
    assert reduce(owned(), submit("/nick  Al ")).effects == (fx.SetDisplayName("Al"),)
    assert "usage" in reduce(owned(), submit("/nick")).state.notice


def test_password_asks_twice_and_keeps_nothing_after() -> None:
    state = reduce(owned(), submit("/password")).state
    assert state.asking is Asking.CURRENT_PASSWORD
    state = reduce(state, submit("old secret")).state
    assert state.asking is Asking.NEW_PASSWORD
    assert "old secret" not in repr(state)  # never in a repr (logs)
    update = reduce(state, submit("new secret!"))
    assert fx.ChangePassword("old secret", "new secret!") in update.effects
    assert "new secret" not in repr(update.effects)
    after = update.state
    assert after.asking is None and after.current_password == ""
    assert not any(x.text in ("old secret", "new secret!") for x in after.outbox)


def test_password_cancelled_by_escape_or_an_empty_line() -> None:
    asked = reduce(reduce(owned(), submit("/password")).state, submit("old secret")).state
    for cancel in (a.Key("back"), submit("")):
        state = reduce(asked, cancel).state
        assert state.asking is None and state.current_password == ""
        assert state.notice == "password not changed"


def test_help_lists_the_new_commands() -> None:
    shown = "\n".join(help_lines())
    for usage in ("/rename NAME", "/topic [TEXT]", "/kick USER", "/names", "/nick NAME"):
        assert usage in shown
    assert "/password" in shown and "F4" in shown


def test_header_without_topic_still_lists_members() -> None:
    shown = text_of(header(owned()))
    assert "3 members" in shown and "bob" in shown
