"""Issue 13's bugs in the message line's reducers: each test failed before
its fix (a too-long message lost, /dm refused for a conversation that
exists, /edit taking the message before a pending one...)."""

from __future__ import annotations

import base64
import errno
import socket
from dataclasses import replace

from grpclib import GRPCError
from grpclib.const import Status

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.clipboard import osc52
from crab.tui.from_server import describe
from crab.tui.reducers.app import reduce
from crab.tui.state import ChatItem, Connection, Focus, History, Line, Link
from crab.tui.views.panels import counter
from tests.helpers.tui import ALICE, line, signed_in, submit
from tests.unit.tui.test_changes import asked


def test_a_message_over_the_servers_limit_stays_on_the_line() -> None:
    state = reduce(signed_in(), a.LimitsKnown(10)).state
    assert state.max_message_chars == 10
    update = reduce(state, submit("x" * 11))
    assert not asked(update) and update.state.outbox == ()
    assert update.state.fill == "x" * 11 and update.state.fill_serial == state.fill_serial + 1
    assert "11 characters; the limit is 10" in update.state.notice
    # At the limit it goes.
    assert isinstance(reduce(state, submit("x" * 10)).effects[0], fx.Send)


def test_a_send_refused_for_its_text_comes_back_to_the_line() -> None:
    sent = reduce(signed_in(), submit("bad text"))
    (effect,) = sent.effects
    assert isinstance(effect, fx.Send)
    cid = effect.line.client_message_id
    back = reduce(sent.state, a.SendRejected(cid, 10, "INVALID_ARGUMENT", "no")).state
    assert back.outbox == () and back.fill == "bad text" and "back on the line" in back.notice
    # Refused for another reason (too many sends): the line is left alone.
    busy = reduce(sent.state, a.SendRejected(cid, 10, "RESOURCE_EXHAUSTED", "slow down")).state
    assert busy.outbox == () and busy.fill_serial == sent.state.fill_serial


def test_dm_and_query_open_a_conversation_that_exists() -> None:
    bob = ChatItem(12, False, "bob", last_message_id=0)
    state = signed_in(chats=(*signed_in().chats, bob))
    for command in ("/dm bob", "/query @Bob"):
        update = reduce(state, submit(command))
        assert update.state.active_chat == 12, command
        assert not any(isinstance(e, fx.InviteToDirect) for e in update.effects)
    # Nobody yet: an invite, as before.
    assert reduce(state, submit("/dm carol")).effects == (fx.InviteToDirect("carol"),)


def test_reconnect_cuts_the_wait_short() -> None:
    waiting = signed_in(connection=Connection(Link.RECONNECTING, 14, "the connection dropped"))
    assert asked(reduce(waiting, submit("/reconnect"))) == (fx.Reconnect(),)
    connected = signed_in(connection=Connection(Link.CONNECTED))
    update = reduce(connected, submit("/reconnect"))
    assert not asked(update) and update.state.notice == "already connected"


def test_edit_and_delete_wait_for_my_pending_message() -> None:
    mine = Line(10, 3, ALICE, "stored", line(10, 1).sent_at, "c3")
    state = signed_in(histories={10: History(lines=(line(10, 1), mine), has_more=False)})
    pending = reduce(state, submit("typo")).state  # in the outbox, not acknowledged
    for command in ("/edit fixed", "/delete"):
        update = reduce(pending, submit(command))
        assert not asked(update) and "still being sent" in update.state.notice, command
    assert "still being sent" in reduce(pending, a.Key("edit_last")).state.notice
    # Acknowledged, the edit goes to it.
    acked = replace(mine, id=4, text="typo", client_message_id=pending.outbox[0].client_message_id)
    done = reduce(pending, a.Acked(acked.client_message_id, acked)).state
    assert reduce(done, submit("/edit fixed")).effects == (fx.EditMessage(10, 4, "fixed"),)


def test_the_status_bar_gets_words_not_errno_text() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 1)")
    assert describe(refused) == "connection refused: is the server running?"
    assert describe(socket.gaierror(-2, "Name or service not known")) == "unknown server name"
    assert describe(TimeoutError()) == "no answer from the server"
    assert describe(ConnectionResetError(errno.ECONNRESET, "reset")) == "the connection dropped"
    assert describe(GRPCError(Status.UNAVAILABLE)) == "unavailable"
    assert describe(GRPCError(Status.PERMISSION_DENIED, "")) == "permission denied"
    assert describe(OSError(errno.ENETUNREACH, "Network is unreachable")) == (
        "network is unreachable"
    )


def test_a_counter_shows_near_the_limit() -> None:
    state = signed_in(max_message_chars=100)
    assert counter(state, "x" * 79) == []
    assert counter(state, "x" * 80) == [("class:hint", " 80/100")]
    assert counter(state, "x" * 101) == [("class:error", " 101/100")]
    assert counter(signed_in(), "x" * 5000) == []  # limit not known yet


def test_ctrl_home_goes_to_the_oldest_loaded_and_asks_for_older() -> None:
    lines = tuple(line(10, i) for i in range(51, 101))
    state = signed_in(histories={10: History(lines=lines, has_more=True)}, pane=(80, 13))
    update = reduce(state, a.Key("scroll_top"))
    assert update.state.scroll == 49  # all but the oldest loaded hidden below it
    assert fx.LoadHistory(10, 51) in update.effects
    # The whole chat loaded: the top of the chat at the top row, no request.
    done = signed_in(histories={10: History(lines=lines, has_more=False)}, pane=(80, 13))
    top = reduce(done, a.Key("scroll_top"))
    assert 0 < top.state.scroll < 49 and not asked(top)


def test_people_puts_its_query_on_the_search_line() -> None:
    """Bug 18: `/people ca` listed results under an empty search line."""
    update = reduce(signed_in(), submit("/people ca"))
    assert update.state.focus is Focus.SEARCH and update.state.fill == "ca"
    assert update.state.fill_serial == 1 and fx.SearchUsers(1, "ca") in update.effects


def test_osc52_carries_any_text_safely() -> None:
    """The copy key's way to the clipboard over ssh: base64 inside, so no
    text (an escape, BEL, ';') can end the sequence or start another."""
    text = "line\x07one; \x1b]0;title\x07 👍"
    sequence = osc52(text)
    assert sequence.startswith("\x1b]52;c;") and sequence.endswith("\x07")
    body = sequence[len("\x1b]52;c;") : -1]
    assert "\x1b" not in body and "\x07" not in body
    assert base64.b64decode(body).decode() == text
    assert len(osc52("x" * 1_000_000)) < 140_000  # bounded
