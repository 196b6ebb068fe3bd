"""Edits, deletes, replies and reactions in the client: the pure reducers
and the views, no event loop."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.from_server import action
from crab.tui.keys import Command
from crab.tui.reducers import Update
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, Asking, ChatItem, Focus, History, Quote, Reaction
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import composing, status
from crab.tui.views.text import clip
from tests.helpers.tui import ALICE, BOB, T0, line, rows_text, signed_in, submit


def key(state: AppState, command: Command) -> AppState:
    return reduce(state, a.Key(command)).state


def asked(update: Update) -> tuple[fx.Effect, ...]:
    """The effects but the notice timer."""
    return tuple(e for e in update.effects if not isinstance(e, fx.ExpireNotice))


def talk() -> AppState:
    """general: 1 bob "hi", 2 alice "mine", 3 bob "later"."""
    lines = (line(10, 1), line(10, 2, ALICE, "mine"), line(10, 3, BOB, "later"))
    return signed_in(histories={10: History(lines=lines, has_more=False)})


def texts(state: AppState, chat_id: int = 10) -> list[str]:
    return [x.text for x in state.history(chat_id).lines]


# ---- applying frames -------------------------------------------------------


def test_a_changed_message_replaces_the_held_copy_and_moves_the_change_cursor() -> None:
    edited = replace(line(10, 1, BOB, "hi there"), edited_at=T0, change_seq=4)
    state = reduce(talk(), a.MessageChanged(edited)).state
    assert texts(state) == ["hi there", "mine", "later"]
    assert state.history(10).lines[0].edited_at == T0
    room = state.chat(10)
    assert room is not None and room.last_change_seq == 4


def test_the_higher_change_seq_wins_whatever_the_order() -> None:
    newer = replace(line(10, 1, BOB, "second edit"), change_seq=7)
    older = replace(line(10, 1, BOB, "first edit"), change_seq=5)
    state = reduce(talk(), a.MessageChanged(newer)).state
    after = reduce(state, a.MessageChanged(older))
    assert after.state.history(10) is state.history(10)
    assert texts(after.state)[0] == "second edit"
    room = after.state.chat(10)
    assert room is not None and room.last_change_seq == 7  # never goes back
    # The same change twice: nothing moves.
    assert reduce(state, a.MessageChanged(newer)).state.history(10) is state.history(10)


def test_a_message_frame_for_a_held_id_keeps_the_higher_change_seq() -> None:
    state = talk()
    replayed = replace(line(10, 2, ALICE, "mine, edited"), change_seq=3)
    state = reduce(state, a.MessageArrived(replayed)).state
    assert texts(state)[1] == "mine, edited"
    stale = replace(line(10, 2, ALICE, "mine"), change_seq=0)
    assert texts(reduce(state, a.MessageArrived(stale)).state)[1] == "mine, edited"


def test_the_answer_to_my_own_change_does_not_move_the_cursor() -> None:
    # Changes before mine may still be on their way on the stream: resuming
    # from my change's number would skip them.
    mine = replace(line(10, 2, ALICE, "mine!"), change_seq=9)
    state = reduce(talk(), a.MessageChanged(mine, from_stream=False)).state
    assert texts(state)[1] == "mine!"
    room = state.chat(10)
    assert room is not None and room.last_change_seq == 0


def test_a_change_to_a_message_not_loaded_only_moves_the_cursor() -> None:
    state = reduce(talk(), a.MessageChanged(replace(line(11, 5), change_seq=2))).state
    room = state.chat(11)
    assert room is not None and room.last_change_seq == 2
    assert 11 not in state.histories


def test_reloading_the_chats_keeps_the_change_cursor_the_client_applied() -> None:
    state = reduce(talk(), a.MessageChanged(replace(line(10, 1), change_seq=3))).state
    fresh = (
        ChatItem(10, True, "general", last_message_id=3, last_change_seq=8),
        ChatItem(12, True, "new", last_change_seq=5),
    )
    state = reduce(state, a.ChatsLoaded(fresh, (), ())).state
    general, new = state.chat(10), state.chat(12)
    assert general is not None and general.last_change_seq == 3
    assert new is not None and new.last_change_seq == 5


def test_a_message_changed_frame_becomes_the_whole_message() -> None:
    message = pb.Message(
        chat_id=10,
        id=4,
        sender=pb.User(id=2, username="bob"),
        text="yes",
        sent_at=T0,
        reply_to_id=1,
        reply_to=pb.ReplyQuote(message_id=1, sender=pb.User(id=1, username="alice"), deleted=True),
        edited_at=T0 + timedelta(minutes=1),
        reactions=[pb.Reaction(emoji="👍", user_ids=[1, 2])],
        change_seq=6,
    )
    found = action(pb.ServerFrame(message_changed=message), me=1)
    assert isinstance(found, a.MessageChanged) and found.from_stream
    got = found.line
    assert (got.id, got.text, got.change_seq, got.reply_to_id) == (4, "yes", 6, 1)
    assert got.quote == Quote("alice", "", deleted=True)
    assert got.reactions == (Reaction("👍", (1, 2)),)
    assert got.edited_at == T0 + timedelta(minutes=1) and not got.deleted


# ---- selection -----------------------------------------------------------------


def test_selection_starts_at_the_newest_message_and_moves() -> None:
    state = key(talk(), Command.SELECT_MESSAGES)
    assert state.focus is Focus.MESSAGES and state.selected == 3
    state = key(state, Command.SELECT_UP)
    assert state.selected == 2
    state = key(key(key(state, Command.SELECT_UP), Command.SELECT_UP), Command.SELECT_UP)
    assert state.selected == 1  # the first message: nothing older to load
    state = key(key(key(state, Command.SELECT_DOWN), Command.SELECT_DOWN), Command.SELECT_DOWN)
    assert state.selected == 3
    state = key(state, Command.BACK)
    assert state.focus is Focus.INPUT and state.selected == 0


def test_selection_past_the_oldest_loaded_loads_the_page_before() -> None:
    state = replace(talk(), histories={10: replace(talk().history(10), has_more=True)})
    state = key(key(key(state, Command.SELECT_MESSAGES), Command.SELECT_UP), Command.SELECT_UP)
    update = reduce(state, a.Key(Command.SELECT_UP))
    assert update.effects == (fx.LoadHistory(10, 1),)
    assert update.state.selected == 1 and update.state.history(10).loading


def test_selection_scrolls_the_view_to_follow_it() -> None:
    lines = tuple(line(10, i) for i in range(1, 41))
    state = signed_in(histories={10: History(lines=lines, has_more=False)})
    state = key(state, Command.SELECT_MESSAGES)
    for _ in range(15):
        state = key(state, Command.SELECT_UP)
    assert state.selected == 25 and state.scroll == 5  # 15 below it, 10 shown under it
    for _ in range(15):
        state = key(state, Command.SELECT_DOWN)
    assert state.selected == 40 and state.scroll == 0


def test_selection_keys_act_on_the_selected_message() -> None:
    state = key(key(talk(), Command.SELECT_MESSAGES), Command.SELECT_UP)
    assert reduce(state, a.Key(Command.DELETE)).effects == (fx.DeleteMessage(10, 2),)
    assert reduce(state, a.Key(Command.COPY)).effects == (fx.Copy("mine"),)
    reacting = key(state, Command.REACT)
    assert reacting.focus is Focus.INPUT and reacting.fill == "/react "
    assert reacting.selected == 2  # /react goes to it
    update = reduce(reacting, submit("/react 🎉"))
    assert update.effects == (fx.React(10, 2, "🎉"),)
    assert update.state.selected == 0


def test_only_mine_or_the_room_owner_may_delete() -> None:
    state = key(talk(), Command.SELECT_MESSAGES)  # bob's "later"
    update = reduce(state, a.Key(Command.DELETE))
    assert not asked(update) and "owner" in update.state.notice
    owned = replace(state, chats=tuple(replace(c, owner_id=ALICE.id) for c in state.chats))
    assert reduce(owned, a.Key(Command.DELETE)).effects == (fx.DeleteMessage(10, 3),)


def test_enter_on_a_reply_jumps_to_the_quoted_message() -> None:
    reply = replace(line(10, 4, BOB, "agreed"), reply_to_id=1)
    state = reduce(talk(), a.MessageArrived(reply)).state
    state = key(state, Command.SELECT_MESSAGES)
    assert state.selected == 4
    assert key(state, Command.JUMP).selected == 1
    plain = key(key(state, Command.SELECT_UP), Command.JUMP)
    assert plain.selected == 3 and plain.notice == "not a reply"


# ---- edit mode -----------------------------------------------------------------


def test_up_on_an_empty_line_edits_my_last_message_and_enter_saves() -> None:
    state = key(talk(), Command.EDIT_LAST)
    assert state.editing == 2 and state.fill == "mine"
    update = reduce(state, submit("mine, better"))
    assert update.effects == (fx.EditMessage(10, 2, "mine, better"),)
    assert update.state.editing == 0 and update.state.outbox == ()


def test_escape_cancels_an_edit_and_empties_the_line() -> None:
    state = key(talk(), Command.EDIT_LAST)
    cancelled = key(state, Command.BACK)
    assert cancelled.editing == 0 and cancelled.fill == ""
    assert cancelled.fill_serial > state.fill_serial
    # Enter now sends a new message again.
    assert isinstance(reduce(cancelled, submit("new")).effects[0], fx.Send)


def test_an_edit_keeps_to_my_own_messages() -> None:
    state = key(talk(), Command.SELECT_MESSAGES)  # bob's
    refused = reduce(state, a.Key(Command.EDIT))
    assert refused.state.editing == 0 and "own" in refused.state.notice
    nothing = signed_in(histories={10: History(lines=(line(10, 1),), has_more=False)})
    assert "no message" in key(nothing, Command.EDIT_LAST).notice


def test_slash_edit_and_delete_act_on_my_last_message() -> None:
    assert reduce(talk(), submit("/edit fixed")).effects == (fx.EditMessage(10, 2, "fixed"),)
    assert reduce(talk(), submit("/delete")).effects == (fx.DeleteMessage(10, 2),)
    tombstone = replace(line(10, 2, ALICE, ""), deleted=True, change_seq=1)
    gone = reduce(talk(), a.MessageChanged(tombstone)).state
    assert "no message" in reduce(gone, submit("/delete")).state.notice


def test_react_checks_its_emoji() -> None:
    assert reduce(talk(), submit("/react 👍")).effects == (fx.React(10, 3, "👍"),)
    assert "usage" in reduce(talk(), submit("/react")).state.notice
    too_long = reduce(talk(), submit("/react " + "x" * 17))
    assert not asked(too_long) and "16" in too_long.state.notice
    # A tombstone at the bottom does not take the reaction: the message above it does.
    tombstone = replace(line(10, 3, BOB, ""), deleted=True, change_seq=1)
    gone = reduce(talk(), a.MessageChanged(tombstone)).state
    assert reduce(gone, submit("/react 👍")).effects == (fx.React(10, 2, "👍"),)


# ---- reply mode ----------------------------------------------------------------


def test_reply_mode_sends_the_next_message_as_a_reply() -> None:
    state = key(key(key(talk(), Command.SELECT_MESSAGES), Command.SELECT_UP), Command.REPLY)
    assert state.replying == 2 and state.focus is Focus.INPUT and state.selected == 0
    assert "replying to alice: mine" in "".join(t for _, t in composing(state))
    update = reduce(state, submit("yes"))
    (send,) = update.effects
    assert isinstance(send, fx.Send) and send.line.reply_to_id == 2
    assert send.line.quote == Quote("alice", "mine")
    assert update.state.replying == 0
    # The next one is a plain message again.
    (plain,) = reduce(update.state, submit("and")).effects
    assert isinstance(plain, fx.Send) and plain.line.reply_to_id == 0


def test_escape_cancels_a_reply() -> None:
    state = key(key(talk(), Command.SELECT_MESSAGES), Command.REPLY)
    assert state.replying == 3
    assert key(state, Command.BACK).replying == 0


# ---- drawing -------------------------------------------------------------------


def test_edits_tombstones_quotes_and_reactions_are_drawn() -> None:
    lines = (
        replace(line(10, 1, BOB, "first words of it"), edited_at=T0),
        replace(line(10, 2, ALICE, ""), deleted=True),
        replace(line(10, 3, BOB, "sure"), reply_to_id=1),
        replace(line(10, 4, BOB, "ok"), reply_to_id=2),
        replace(
            line(10, 5, BOB, "party"),
            reactions=(Reaction("👍", (1, 2)), Reaction("🎉", (2,))),
        ),
    )
    state = signed_in(histories={10: History(lines=lines, has_more=False)})
    shown = rows_text(visible_rows(state, 80, 20))
    assert any(r.endswith("first words of it (edited)") for r in shown)
    assert any(r.endswith("message deleted") for r in shown)
    assert any(r.strip() == "↳ bob: first words of it" for r in shown)
    assert any(r.strip() == "↳ deleted message" for r in shown)
    assert any(r.strip() == "👍 2  🎉 1" for r in shown)


def test_a_quote_not_loaded_comes_from_the_server_and_is_cut_to_the_width() -> None:
    reply = replace(line(10, 3, BOB, "yes"), reply_to_id=99, quote=Quote("carol", "漢字" * 40))
    state = signed_in(histories={10: History(lines=(reply,), has_more=False)})
    shown = rows_text(visible_rows(state, 60, 10))
    quote = next(r for r in shown if "↳" in r)
    assert "carol: 漢字" in quote and quote.endswith("…")
    assert clip("漢字漢字", 5) == "漢字…" and clip("漢字", 4) == "漢字"


def test_the_selected_message_shows_who_reacted() -> None:
    party = replace(line(10, 3, BOB, "party"), reactions=(Reaction("👍", (1, 2)),), edited_at=T0)
    state = signed_in(histories={10: History(lines=(line(10, 1), party), has_more=False)})
    state = key(state, Command.SELECT_MESSAGES)
    bar = "".join(t for _, t in status(state))
    assert "👍 alice, bob" in bar and "edited " in bar
    rows = visible_rows(state, 80, 10)
    assert any(f[0].startswith("class:selected") for row in rows for f in row if "party" in f[1])


def test_no_edit_or_selection_while_the_line_asks_a_password() -> None:
    asking = replace(talk(), asking=Asking.CURRENT_PASSWORD)
    assert key(asking, Command.EDIT_LAST) == asking
    assert key(asking, Command.SELECT_MESSAGES).focus is Focus.INPUT
