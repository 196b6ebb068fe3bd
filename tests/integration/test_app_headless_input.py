"""Issue 13's bugs of the message line and the link, in the whole client
(headless) against a real server: each test failed before its fix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.tui.state import Connection, Focus, Link, Screen
from tests.helpers.proxy import TcpProxy
from tests.integration.test_app_headless import messages, person

F3 = "\x1bOR"
CTRL_O = "\x0f"
CTRL_J = "\n"
PASTE = "\x1b[200~{}\x1b[201~"


@pytest.mark.timeout(60)
async def test_the_people_search_query_never_prefixes_the_next_message(
    crab: Crab, tmp_path: Path
) -> None:
    """F3, `car`, Ctrl+O (invite carol), then `/invite carol`: the room got
    `car/invite carol` when the query stayed on the line."""
    async with person(crab, tmp_path / "carol") as carol:
        await carol.sign_up("carol")
    async with person(crab, tmp_path / "alice") as alice:
        await alice.sign_up("alice")
        await alice.create_room("general")
        alice.type(F3)
        await alice.until(lambda s: s.focus is Focus.SEARCH)
        alice.type("car")
        await alice.until(lambda s: [p.username for p in s.search.results] == ["carol"])
        alice.type(CTRL_O)
        await alice.until(lambda s: "invited carol" in s.notice)
        assert alice.state.focus is Focus.INPUT and alice.app.message_line.text == ""
        await alice.say("/invite carol")
        await alice.until(lambda s: "already" in s.notice)
        await alice.say("hello")
        await alice.until(lambda s: s.outbox == () and "hello" in messages(s))
        assert messages(alice.state) == ["hello"]


@pytest.mark.timeout(60)
async def test_a_multi_line_paste_is_shown_whole_and_sent_as_one_message(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice:
        await alice.sign_up("alice")
        await alice.create_room("general")
        alice.type(PASTE.format("one\ntwo\nthree\n"))
        line = alice.app.message_line
        await alice.line_shows("one\ntwo\nthree\n")
        # Every line shows: the message line grows to hold them.
        height = line.window.preferred_height(80, 30).preferred
        assert height >= 4, height
        alice.type("\r")
        await alice.until(lambda s: "one\ntwo\nthree" in messages(s) and s.outbox == ())
        # Ctrl+J starts a new line; Enter sends.
        alice.type("first" + CTRL_J + "second\r")
        await alice.until(lambda s: "first\nsecond" in messages(s))
        assert line.text == ""
        # Alt+Enter too (Esc then Enter in one read: one key, not Esc alone).
        alice.type("third\x1b\rfourth\r")
        await alice.until(lambda s: "third\nfourth" in messages(s))


@pytest.mark.timeout(60)
async def test_logout_leaves_no_password_in_the_form(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "alice") as alice:
        await alice.sign_up("alice")
        await alice.say("/logout")
        await alice.until(lambda s: s.screen is Screen.SIGN_IN)
        form = alice.app.sign_in
        assert form.password.text == "" and form.confirm.text == ""
        assert form.username.text == "alice"  # kept: only the secret goes


@pytest.mark.timeout(60)
async def test_each_new_outage_starts_the_backoff_again(crab: Crab, tmp_path: Path) -> None:
    """After one outage, the next one waited up to 15 s: the wait grew on
    and was reset only when the server ended a stream cleanly."""
    waits: list[float] = []
    with TcpProxy(crab.port) as proxy:
        async with person(crab, tmp_path / "alice", port=proxy.port) as alice:

            def note(state: object) -> None:
                c: Connection = alice.state.connection
                if c.link is Link.RECONNECTING and c.retry_in and (not waits or c.retry_in > 0):
                    waits.append(c.retry_in)

            alice.app.store.subscribe(note)
            await alice.sign_up("alice")
            # A first outage long enough for the wait to grow (1 s, then 2 s).
            await asyncio.to_thread(proxy.cut)
            await alice.until(lambda s: s.connection.retry_in == 2.0, timeout=20)
            await asyncio.to_thread(proxy.restore)
            await alice.until(lambda s: s.connection.link is Link.CONNECTED, timeout=20)
            waits.clear()
            await asyncio.to_thread(proxy.cut)
            await alice.until(lambda s: s.connection.link is Link.RECONNECTING and bool(waits))
            assert waits[0] == 1.0, waits
            # And /reconnect does not wait at all.
            await asyncio.to_thread(proxy.restore)
            await alice.say("/reconnect")
            await alice.until(lambda s: s.connection.link is Link.CONNECTED, timeout=5)


@pytest.mark.timeout(60)
async def test_end_moves_on_the_line_and_ctrl_end_jumps_to_the_newest(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice:
        await alice.sign_up("alice")
        await alice.create_room("general")
        line = alice.app.message_line
        alice.type("abc" + "\x1b[H" + "X" + "\x1b[F" + "Y")  # Home, End
        await alice.line_shows("XabcY")
        assert line.buffer.cursor_position == 5
        await alice.say("")  # sends it
        for n in range(40):
            await alice.say(f"line {n}")
        await alice.until(lambda s: s.outbox == () and len(messages(s)) == 41)
        assert messages(alice.state)[0] == "XabcY"
        alice.type("\x1b[5~")  # PgUp
        await alice.until(lambda s: s.scroll > 0)
        alice.type("\x1b[1;5F")  # Ctrl+End
        await alice.until(lambda s: s.scroll == 0)


@pytest.mark.timeout(60)
async def test_reading_a_burst_as_it_comes_is_a_few_mark_reads_not_one_each(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each message shown in the open chat counts as read: 40 in a burst
    were 40 MarkRead calls (a write each on the server). Now: one at once,
    then at most one a second with the newest id; the last is told."""
    calls: list[int] = []
    called = asyncio.Event()
    mark_read = crab.chats.mark_read

    async def counted(caller: Any, chat_id: int, message_id: int) -> None:
        calls.append(message_id)
        await mark_read(caller, chat_id, message_id)
        called.set()

    monkeypatch.setattr(crab.chats, "mark_read", counted)
    bob = CrabClient("127.0.0.1", crab.port)
    try:
        async with person(crab, tmp_path / "alice") as alice:
            await alice.sign_up("alice")
            await bob.sign_up("bob", "secret-pass")
            room = await bob.create_room("general")
            await bob.invite_to_room(room.id, alice.state.me.id if alice.state.me else 0)
            await alice.until(lambda s: len(s.invites) == 1)
            await alice.say("/accept")
            await alice.until(lambda s: s.active_chat == room.id)
            async with bob.session() as live:
                for n in range(40):
                    await live.send(room.id, f"burst {n}")
                await alice.until(lambda s: len(messages(s)) == 40)
            newest = alice.state.history(room.id).newest_id
            alice_id = alice.state.me.id if alice.state.me else 0
            async with asyncio.timeout(10):
                while not calls or calls[-1] != newest:
                    called.clear()
                    await called.wait()
        assert len(calls) <= 5, calls
        assert calls == sorted(calls)
        detail = await bob.chat(room.id)
        read = {p.user_id: p.last_read_id for p in detail.read_positions}
        assert read[alice_id] == newest
    finally:
        bob.close()
