"""Reducers and the store: plain functions of state, no event loop."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import COMMANDS, KEYS, help_lines
from crab.tui.reducers import Update
from crab.tui.reducers.app import NOTICE_SECONDS, reduce
from crab.tui.state import (
    AppState,
    Bell,
    ChatItem,
    Focus,
    History,
    InviteItem,
    Line,
    Screen,
)
from crab.tui.store import Store
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import sidebar
from crab.tui.views.text import inert
from tests.helpers.tui import ALICE, BOB, line, rows_text, signed_in, submit


def test_sign_in_form_checks_before_asking_the_server() -> None:
    state = AppState(server="s:1")
    update = reduce(state, a.SignInSubmit("", "x"))
    assert update.state.sign_in.error and not update.effects
    state = reduce(state, a.Key("toggle_signup")).state
    assert state.sign_in.signing_up
    update = reduce(state, a.SignInSubmit("alice", "password1", "password2"))
    assert "match" in update.state.sign_in.error and not update.effects
    update = reduce(state, a.SignInSubmit(" alice ", "password1", "password1"))
    assert update.effects == (fx.SignIn("alice", "password1", True),)
    assert update.state.sign_in.busy
    failed = reduce(update.state, a.SignInFailed("username 'alice' is taken")).state
    assert failed.sign_in.error == "username 'alice' is taken" and not failed.sign_in.busy


def test_signed_in_opens_chats_and_loads_them() -> None:
    update = reduce(AppState(server="s:1"), a.SignedIn(ALICE))
    assert update.state.screen is Screen.CHATS and update.state.me == ALICE
    assert update.effects == (fx.LoadChats(),)


def test_message_in_open_chat_appends_and_marks_read() -> None:
    update = reduce(signed_in(), a.MessageArrived(line(10, 3)))
    assert [x.id for x in update.state.history(10).lines] == [1, 2, 3]
    assert update.effects == (fx.MarkRead(10, 3),)
    # The same message again (a replay after reconnect) changes nothing.
    again = reduce(update.state, a.MessageArrived(line(10, 3)))
    assert again.state is update.state


def test_message_elsewhere_counts_unread_and_rings_only_when_the_bell_says() -> None:
    update = reduce(signed_in(), a.MessageArrived(line(11, 1)))
    room = update.state.chat(11)
    assert room is not None and room.unread == 1 and room.last_message_id == 1
    assert room.mentions == 0
    assert [c.id for c in update.state.chats] == [10, 11]  # fixed order: stays put
    assert update.effects == ()  # the default: mentions and personal conversations
    loud = reduce(signed_in(bell=Bell.ALL), a.MessageArrived(line(11, 1)))
    assert loud.effects == (fx.Bell(),)
    # "@alice" in the text is not a mention: the server says who is mentioned.
    typed = reduce(signed_in(), a.MessageArrived(line(11, 1, text="hey @alice")))
    assert typed.effects == ()


def mentioning(chat_id: int, id: int, *, me: bool = False, room: bool = False) -> Line:
    return replace(
        line(chat_id, id), mention_user_ids=(ALICE.id,) if me else (BOB.id,), mentions_room=room
    )


def test_a_mention_of_me_elsewhere_counts_and_rings_unless_the_bell_is_off() -> None:
    state = signed_in()
    for arrived in (mentioning(11, 1, me=True), mentioning(11, 2, room=True)):
        update = reduce(state, a.MessageArrived(arrived))
        assert update.effects == (fx.Bell(),)
        state = update.state
    state = reduce(state, a.MessageArrived(mentioning(11, 3))).state  # bob is mentioned
    room = state.chat(11)
    assert room is not None and (room.unread, room.mentions) == (3, 2)
    off = reduce(signed_in(bell=Bell.OFF), a.MessageArrived(mentioning(11, 1, me=True)))
    assert off.effects == ()
    # Opening the chat reads it: both counts go, here and on the server.
    update = reduce(state, a.Key("next_chat"))
    assert fx.MarkRead(11, 3) in update.effects
    opened = update.state
    room = opened.chat(11)
    assert opened.active_chat == 11 and room is not None and (room.unread, room.mentions) == (0, 0)


def test_in_the_open_chat_a_mention_neither_counts_nor_rings() -> None:
    update = reduce(signed_in(bell=Bell.ALL), a.MessageArrived(mentioning(10, 3, me=True)))
    room = update.state.chat(10)
    assert room is not None and room.mentions == 0
    assert fx.Bell() not in update.effects


def test_any_message_of_a_personal_conversation_rings_but_not_my_own() -> None:
    direct = ChatItem(12, False, "bob")
    state = signed_in(chats=(*signed_in().chats, direct))
    assert reduce(state, a.MessageArrived(line(12, 1))).effects == (fx.Bell(),)
    mine = reduce(state, a.MessageArrived(line(12, 1, sender=ALICE)))
    assert mine.effects == ()


def saved(update: Update) -> list[fx.Effect]:
    return [e for e in update.effects if not isinstance(e, fx.ExpireNotice)]


def test_bell_command_changes_the_setting_and_saves_it() -> None:
    state = signed_in()
    update = reduce(state, submit("/bell"))
    assert "mentions of you" in update.state.notice and saved(update) == []
    update = reduce(state, submit("/bell OFF"))
    assert update.state.bell is Bell.OFF and saved(update) == [fx.SaveBell("off")]
    update = reduce(update.state, submit("/bell all"))
    assert update.state.bell is Bell.ALL and saved(update) == [fx.SaveBell("all")]
    for garbage in ("/bell loud", "/bell none", "/bell \x07", "/bell " + "m" * 500):
        refused = reduce(state, submit(garbage))
        assert refused.state.bell is Bell.MENTIONS and saved(refused) == []
        assert refused.state.notice == "usage: /bell all|mentions|off"


def test_a_message_that_mentions_me_is_highlighted() -> None:
    lines = (line(10, 1, text="plain"), mentioning(10, 2, me=True), mentioning(10, 3))
    state = signed_in(histories={10: History(lines=lines, has_more=False)})
    rows = visible_rows(state, 60, 10)
    texts = [(f[0], f[1]) for row in rows for f in row if f[1] in ("plain", "hi")]
    # Only the one that mentions me (bob's mention is not mine to notice).
    assert texts == [("", "plain"), ("class:mention", "hi"), ("", "hi")]


def test_the_sidebar_shows_unread_and_mention_counts() -> None:
    chats = (ChatItem(10, True, "general"), ChatItem(11, True, "random", unread=12, mentions=2))
    text = "".join(f[1] for f in sidebar(signed_in(chats=chats)))
    assert " # random (12) @2\n" in text
    assert " # general\n" in text


def test_own_message_never_unread() -> None:
    update = reduce(signed_in(), a.MessageArrived(line(11, 1, sender=ALICE)))
    room = update.state.chat(11)
    assert room is not None and room.unread == 0 and update.effects == ()


def test_send_goes_to_outbox_until_acknowledged() -> None:
    update = reduce(signed_in(), submit("hello there"))
    (pending,) = update.state.outbox
    assert pending.text == "hello there" and pending.pending
    assert update.effects == (fx.Send(pending),)
    stored = replace(pending, id=3, pending=False)
    acked = reduce(update.state, a.Acked(pending.client_message_id, stored)).state
    assert acked.outbox == ()
    assert acked.history(10).lines[-1].text == "hello there"


def test_rejected_send_leaves_outbox_with_a_notice() -> None:
    state = reduce(signed_in(), submit("x" * 5000)).state
    (pending,) = state.outbox
    state = reduce(
        state, a.SendRejected(pending.client_message_id, 10, "INVALID_ARGUMENT", "too long")
    ).state
    assert state.outbox == () and "too long" in state.notice


def test_slash_commands() -> None:
    state = signed_in(
        invites=(InviteItem(5, BOB, ALICE, None, ""), InviteItem(6, BOB, ALICE, 12, "ops"))
    )
    assert reduce(state, submit("/create ops")).effects == (fx.CreateRoom("ops"),)
    assert reduce(state, submit("/invite @bob")).effects == (fx.InviteToRoom(10, "bob"),)
    assert reduce(state, submit("/dm bob")).effects == (fx.InviteToDirect("bob"),)
    assert reduce(state, submit("/accept")).effects == (fx.AnswerInvite(5, True),)
    assert reduce(state, submit("/reject 2")).effects == (fx.AnswerInvite(6, False),)
    assert "usage" in reduce(state, submit("/reject 3")).state.notice
    assert reduce(state, submit("/leave")).effects == (fx.LeaveChat(10),)
    assert reduce(state, submit("/invites")).state.focus is Focus.INVITES
    assert reduce(state, submit("/help")).state.focus is Focus.HELP
    assert reduce(state, submit("/logout")).effects == (fx.SignOut(),)
    assert reduce(state, submit("/quit")).state.quitting
    assert "unknown command" in reduce(state, submit("/frobnicate")).state.notice
    # "//" escapes a leading slash.
    (sent,) = reduce(state, submit("//shrug")).state.outbox
    assert sent.text == "/shrug"


def test_search_drops_stale_answers() -> None:
    state = reduce(signed_in(), a.Key("search")).state
    assert state.focus is Focus.SEARCH
    first = reduce(state, a.InputChanged("b"))
    second = reduce(first.state, a.InputChanged("bo"))
    assert second.effects == (fx.SearchUsers(2, "bo"),)
    stale = reduce(second.state, a.SearchResults(1, (ALICE,))).state
    assert stale.search.results == ()
    fresh = reduce(stale, a.SearchResults(2, (BOB,))).state
    assert fresh.search.results == (BOB,)
    dm = reduce(fresh, a.Key("dm_selected"))
    assert dm.effects == (fx.InviteToDirect("bob"),) and dm.state.focus is Focus.INPUT


def test_scrolling_up_fetches_older_pages_until_the_first() -> None:
    lines = tuple(line(10, i) for i in range(51, 101))
    # 13 rows: a page is the 10 one-row messages that fit, less two rows.
    state = signed_in(histories={10: History(lines=lines, has_more=True)}, pane=(80, 13))
    state = reduce(state, a.Key("scroll_up")).state
    update = reduce(state, a.Key("scroll_up"))
    update = reduce(update.state, a.Key("scroll_up"))
    assert fx.LoadHistory(10, 51) in update.effects
    # While loading, no second request for the same page.
    assert not reduce(update.state, a.Key("scroll_up")).effects
    older = tuple(line(10, i) for i in range(1, 51))
    loaded = reduce(update.state, a.HistoryLoaded(10, older, has_more=False)).state
    assert [x.id for x in loaded.history(10).lines] == list(range(1, 101))
    assert not loaded.history(10).has_more


def test_invites_panel_and_answers() -> None:
    invite = InviteItem(5, BOB, ALICE, 12, "ops")
    state = reduce(signed_in(), a.InviteArrived(invite))
    assert state.state.invites == (invite,) and fx.Bell() in state.effects
    panel = reduce(state.state, a.Key("invites")).state
    assert panel.focus is Focus.INVITES
    assert reduce(panel, a.Key("accept")).effects == (fx.AnswerInvite(5, True),)
    joined = ChatItem(12, True, "ops")
    done = reduce(panel, a.InviteAnswered(5, True, True, joined, "alice")).state
    assert done.invites == () and done.chat(12) is not None


def test_leaving_the_open_chat_opens_another() -> None:
    update = reduce(signed_in(), a.ChatLeft(10))
    assert update.state.chat(10) is None and update.state.active_chat == 11
    assert fx.LoadHistory(11, 0) in update.effects


def test_help_is_generated_from_the_key_table() -> None:
    text = "\n".join(help_lines())
    for binding in KEYS:
        assert binding.help in text
    for command in COMMANDS:
        assert f"/{command.name}" in text


def test_text_from_others_is_inert() -> None:
    assert inert("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert inert("bell\x07 c1\x9b") == "bell\\x07 c1\\x9b"
    assert inert("keep\nnew\tline") == "keep\nnew    line"
    assert inert("abc\u202edcba") == "abc\\u202edcba"


def test_a_notice_clears_itself_after_a_few_seconds() -> None:
    update = reduce(signed_in(), submit("/invite"))
    state = update.state
    assert state.notice == "usage: /invite USER"
    assert update.effects == (fx.ExpireNotice(state.notice_serial, NOTICE_SECONDS),)
    assert reduce(state, a.NoticeExpired(state.notice_serial)).state.notice == ""


def test_the_timer_of_an_older_notice_leaves_a_newer_one() -> None:
    first = reduce(signed_in(), a.Notice("invited bob")).state
    second = reduce(first, a.Failed("no user named eve")).state
    assert second.notice_serial == first.notice_serial + 1
    assert reduce(second, a.NoticeExpired(first.notice_serial)).state is second
    cleared = reduce(second, a.NoticeExpired(second.notice_serial))
    assert cleared.state.notice == "" and cleared.effects == ()
    # An action that leaves the notice as it is starts no second timer.
    assert reduce(second, a.Key("scroll_up")).effects == ()


def test_a_timer_from_before_a_sign_out_clears_nothing_after_it() -> None:
    before = reduce(signed_in(), a.Notice("invited bob")).state
    out = reduce(before, a.SignedOut("signed out")).state
    again = reduce(out, a.SignedIn(ALICE)).state
    shown = reduce(again, a.Notice("created room ops")).state
    assert shown.notice_serial > before.notice_serial
    assert reduce(shown, a.NoticeExpired(before.notice_serial)).state.notice == "created room ops"


def test_only_visible_rows_are_rendered() -> None:
    lines = tuple(line(10, i, text=f"message {i}") for i in range(1, 10_001))
    state = signed_in(histories={10: History(lines=lines, has_more=False)})
    text = rows_text(visible_rows(state, 80, 20))
    assert len(text) == 20 and "message 10000" in text[-1] and "message 9981" in text[0]
    scrolled = rows_text(visible_rows(replace(state, scroll=5), 80, 20))
    assert "message 9995" in scrolled[-2]
    assert scrolled[-1] == "↓ 5 newer messages below (Ctrl+End: newest)"


def test_scrolled_to_the_top_the_beginning_stays_on_the_top_row() -> None:
    lines = tuple(line(10, i, text=f"message {i}") for i in range(1, 10_001))
    state = signed_in(histories={10: History(lines=lines, has_more=False)}, pane=(80, 5))
    for _ in range(5_000):  # PageUp past the top stops with the top on the top row
        state = reduce(state, a.Key("scroll_up")).state
    text = rows_text(visible_rows(state, 80, 5))
    assert text[0] == "This is the beginning of the chat."
    assert "──" in text[1] and text[2].endswith("message 1") and text[3].endswith("message 2")
    assert text[4] == "↓ 9998 newer messages below (Ctrl+End: newest)"
    # The next PgDn moves at once: no presses are lost in an overscroll.
    state = reduce(state, a.Key("scroll_down")).state
    assert rows_text(visible_rows(state, 80, 5))[-2].endswith("message 4")


def test_a_page_is_a_screen_less_two_rows_and_keeps_a_row_in_view() -> None:
    lines = tuple(line(10, i, text=f"message {i}") for i in range(1, 201))
    state = signed_in(histories={10: History(lines=lines, has_more=False)}, pane=(80, 20))
    before = rows_text(visible_rows(state, 80, 20))
    state = reduce(state, a.Key("scroll_up")).state
    after = rows_text(visible_rows(state, 80, 20))
    # What was near the top of the screen is now at its bottom (above the marker).
    assert after[-2] in before[:3] and after[-1].startswith("↓")
    back = reduce(state, a.Key("scroll_down")).state
    assert back.scroll == 0 and rows_text(visible_rows(back, 80, 20)) == before


def test_a_long_message_wraps_and_the_view_shows_its_end() -> None:
    long = line(10, 3, text=" ".join(f"word{i}" for i in range(60)))
    state = signed_in(histories={10: History(lines=(line(10, 1), line(10, 2), long))})
    text = rows_text(visible_rows(state, 60, 4))
    assert text[-1].endswith("word59") and len(text) == 4
    pending = reduce(state, submit("on its way")).state
    assert rows_text(visible_rows(pending, 60, 4))[-1].endswith("on its way  (sending)")


def test_store_notifies_and_runs_effects() -> None:
    store = Store(signed_in())
    seen: list[AppState] = []
    effects: list[fx.Effect] = []
    store.subscribe(seen.append)
    store.on_effect(effects.append)
    store.dispatch(submit("/create ops"))
    assert effects == [fx.CreateRoom("ops")] and seen == []  # no state change
    store.dispatch(a.Key("next_chat"))
    assert seen and seen[-1].active_chat == 11 and store.actions == 2


def test_readme_lists_every_key_and_command() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for row in help_lines():
        assert row in readme, f"README is missing the help line {row!r}"


def test_a_member_list_read_before_a_join_does_not_undo_it() -> None:
    """GetChat's answer can arrive after a live member_joined it does not
    know about yet: the join (and a later leave) are applied over it."""
    carol = replace(BOB, id=3, username="carol")
    state = reduce(signed_in(), a.MemberChanged(11, carol, joined=True)).state
    state = reduce(state, a.MemberChanged(11, BOB, joined=False)).state
    state = reduce(state, a.MembersLoaded(11, (ALICE, BOB))).state
    assert [p.username for p in state.history(11).members] == ["alice", "carol"]
    # Once loaded, frames apply as they come, and nothing is kept for later.
    state = reduce(state, a.MemberChanged(11, BOB, joined=True)).state
    history = state.history(11)
    assert [p.username for p in history.members] == ["alice", "carol", "bob"]
    assert history.members_loaded and not history.member_changes


def test_a_chat_list_read_before_a_join_does_not_undo_it() -> None:
    """MyChats' answer can be older than a chat_joined frame that came
    first (a reload on connect while /create runs): the chat stays."""
    state = reduce(signed_in(chats=(), active_chat=None), a.ChatsLoading()).state
    general = ChatItem(10, True, "general", last_message_id=0)
    state = reduce(state, a.ChatJoined(general)).state
    state = reduce(state, a.ChatLeft(11)).state  # left while the call was out
    random = ChatItem(11, True, "random", last_message_id=0)
    state = reduce(state, a.ChatsLoaded((random,), (), ())).state
    assert [c.name for c in state.chats] == ["general"] and state.active_chat == 10
    assert state.chats_loading == 0 and state.chat_changes == ()
    # A failed load stops the recording too.
    state = reduce(reduce(state, a.ChatsLoading()).state, a.ChatsLoadFailed()).state
    assert state.chats_loading == 0
    state = reduce(state, a.ChatJoined(random)).state
    assert state.chat_changes == ()
