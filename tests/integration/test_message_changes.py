"""Edits, deletes, reactions and replies through a real server and real
clients: seen live by the others, refused with a clear status and nothing
changed, idempotent by request id, and caught up on resume
(docs/conversation.md)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from grpclib import GRPCError
from grpclib.const import Status
from sqlalchemy.engine import Connection

from crab.client.connection import CrabClient, SessionStream, new_request_id
from crab.core.app import Crab
from crab.core.domain import events as ev
from crab.core.domain.models import Caller
from crab.core.services import live
from crab.core.storage.tables import messages
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages, join_room
from tests.helpers.server import ClientFactory
from tests.helpers.views import View


@dataclass
class Room:
    alice: CrabClient  # the owner
    bob: CrabClient
    carol: CrabClient  # in no chat of theirs
    id: int


@pytest.fixture
async def room(connect: ClientFactory) -> Room:
    alice, bob, carol = [await connect(n) for n in ("alice", "bob", "carol")]
    return Room(alice, bob, carol, await join_room(alice, bob))


async def send(live: SessionStream, chat_id: int, text: str, reply_to_id: int = 0) -> pb.Message:
    cid = await live.send(chat_id, text, reply_to_id=reply_to_id)
    frame = await live.wait_for(
        lambda f: (
            (f.ack is not None and f.ack.client_message_id == cid)
            or (f.send_error is not None and f.send_error.client_message_id == cid)
        )
    )
    assert frame.ack is not None and frame.ack.message is not None, frame.send_error
    return frame.ack.message


async def changed(live: SessionStream, message_id: int, change_seq: int) -> pb.Message:
    frame = await live.wait_for(
        lambda f: (
            f.message_changed is not None
            and f.message_changed.id == message_id
            and f.message_changed.change_seq == change_seq
        )
    )
    assert frame.message_changed is not None
    return frame.message_changed


async def status_of(call: Awaitable[Any]) -> Status:
    with pytest.raises(GRPCError) as raised:
        await call
    return raised.value.status


async def history(client: CrabClient, chat_id: int) -> list[pb.Message]:
    return await all_messages(client, chat_id)


# ---- seen live --------------------------------------------------------------


async def test_edit_react_reply_and_delete_are_seen_live_by_the_others(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a, bob.session() as b:
        hello = await send(a, room.id, "hello all")
        await b.wait_for(lambda f: f.message is not None and f.message.id == hello.id)

        edited = await alice.edit_message(room.id, hello.id, "hello everyone")
        assert (edited.text, edited.change_seq) == ("hello everyone", 1)
        assert edited.edited_at is not None
        seen = await changed(b, hello.id, 1)
        assert seen.text == "hello everyone" and seen.edited_at == edited.edited_at

        reacted = await bob.react(room.id, hello.id, "👍🏽")
        assert [(r.emoji, list(r.user_ids)) for r in reacted.reactions] == [("👍🏽", [bob.user.id])]
        await alice.react(room.id, hello.id, "👍🏽")
        seen = await changed(b, hello.id, 3)
        assert [(r.emoji, list(r.user_ids)) for r in seen.reactions] == [
            ("👍🏽", [bob.user.id, alice.user.id])
        ]

        reply = await send(b, room.id, "thanks", reply_to_id=hello.id)
        assert reply.reply_to_id == hello.id
        assert reply.reply_to is not None
        assert (reply.reply_to.text_start, reply.reply_to.sender.id) == (
            "hello everyone",
            alice.user.id,
        )
        live_reply = await a.wait_for(lambda f: f.message is not None and f.message.id == reply.id)
        assert live_reply.message is not None and live_reply.message.reply_to_id == hello.id

        gone = await alice.delete_message(room.id, hello.id)
        assert (gone.deleted, gone.text, gone.reactions, gone.change_seq) == (True, "", [], 4)
        seen = await changed(b, hello.id, 4)
        assert seen.deleted and seen.text == "" and not seen.reactions

    # Every reader tells the same story: the quote now says "deleted".
    pages = await history(bob, room.id)
    assert pages[0].deleted and pages[0].change_seq == 4
    assert pages[1].reply_to is not None and pages[1].reply_to.deleted
    assert pages[1].reply_to.text_start == ""
    chats = await bob.my_chats()
    (summary,) = [s for s in chats if s.chat.id == room.id]
    assert summary.last_message is not None and summary.last_message.reply_to is not None
    assert summary.chat.last_change_seq == 4


async def test_a_long_text_is_quoted_by_its_first_80_characters(room: Room) -> None:
    async with room.alice.session() as a:
        long = await send(a, room.id, "x" * 79 + "yz" + "w" * 100)
        reply = await send(a, room.id, "re", reply_to_id=long.id)
    assert reply.reply_to is not None and reply.reply_to.text_start == "x" * 79 + "y"


# ---- the rules, each with its status and nothing changed --------------------


async def test_what_breaks_a_rule_is_refused_and_changes_nothing(room: Room) -> None:
    alice, bob, carol = room.alice, room.bob, room.carol
    async with alice.session() as a:
        mine = await send(a, room.id, "alice's")
        doomed = await send(a, room.id, "to be deleted")
    await alice.delete_message(room.id, doomed.id)
    async with bob.session() as b:
        bobs = await send(b, room.id, "bob's")
    before = await history(alice, room.id)

    refused = [
        (bob.edit_message(room.id, mine.id, "hacked"), Status.PERMISSION_DENIED),
        (bob.delete_message(room.id, mine.id), Status.PERMISSION_DENIED),
        (carol.edit_message(room.id, mine.id, "x"), Status.NOT_FOUND),
        (carol.delete_message(room.id, mine.id), Status.NOT_FOUND),
        (carol.react(room.id, mine.id, "👍"), Status.NOT_FOUND),
        (carol.get_changes(room.id, 0), Status.NOT_FOUND),
        (alice.edit_message(room.id, 999, "x"), Status.NOT_FOUND),
        (alice.react(room.id, 2**64 - 1, "👍"), Status.NOT_FOUND),
        (alice.edit_message(999_999, 1, "x"), Status.NOT_FOUND),
        (alice.edit_message(room.id, doomed.id, "back"), Status.FAILED_PRECONDITION),
        (alice.react(room.id, doomed.id, "👍"), Status.FAILED_PRECONDITION),
        (alice.delete_message(room.id, doomed.id), Status.FAILED_PRECONDITION),
        (alice.edit_message(room.id, bobs.id, "owner edits"), Status.PERMISSION_DENIED),
        (alice.edit_message(room.id, mine.id, "y" * 4001), Status.INVALID_ARGUMENT),
        (alice.edit_message(room.id, mine.id, "  "), Status.INVALID_ARGUMENT),
        (alice.edit_message(room.id, mine.id, "\x1b[2Jgone"), Status.INVALID_ARGUMENT),
        (alice.get_changes(room.id, 0, limit=501), Status.INVALID_ARGUMENT),
    ]
    garbage = ["", "a b", "\x1b[31m", "x\n", "\u00a0", "🦀" * 17, "\u2028"]
    refused += [(alice.react(room.id, mine.id, g), Status.INVALID_ARGUMENT) for g in garbage]
    for call, status in refused:
        assert await status_of(call) == status
    assert await history(alice, room.id) == before
    changes = await alice.get_changes(room.id, 0)
    assert [m.id for m in changes.messages] == [doomed.id]  # only the delete


async def test_a_room_owner_deletes_anyones_message_but_not_in_a_direct_chat(
    room: Room, connect: ClientFactory
) -> None:
    async with room.bob.session() as b:
        bobs = await send(b, room.id, "spam")
    gone = await room.alice.delete_message(room.id, bobs.id)
    assert gone.deleted and gone.sender is not None and gone.sender.id == room.bob.user.id

    invite = await room.alice.invite_to_direct(room.bob.user.id)
    answer = await room.bob.answer_invite(invite.id, accept=True)
    assert answer.chat is not None
    async with room.bob.session() as b:
        direct = await send(b, answer.chat.id, "just us")
    status = await status_of(room.alice.delete_message(answer.chat.id, direct.id))
    assert status == Status.PERMISSION_DENIED


async def test_a_message_takes_at_most_20_different_emojis(room: Room) -> None:
    async with room.alice.session() as a:
        target = await send(a, room.id, "react to me")
    emojis = [chr(0x1F600 + i) for i in range(21)]
    for emoji in emojis[:20]:
        await room.bob.react(room.id, target.id, emoji)
    status = await status_of(room.bob.react(room.id, target.id, emojis[20]))
    assert status == Status.FAILED_PRECONDITION
    again = await room.alice.react(room.id, target.id, emojis[0])  # one already there: fine
    assert list(again.reactions[0].user_ids) == [room.bob.user.id, room.alice.user.id]
    assert len(again.reactions) == 20


async def test_a_reply_names_an_existing_message_of_the_same_chat(
    room: Room, connect: ClientFactory
) -> None:
    elsewhere = await join_room(room.alice, room.bob, "elsewhere")
    async with room.alice.session() as a:
        other = await send(a, elsewhere, "in another chat")
        await send(a, room.id, "first")
        before = await history(room.alice, room.id)
        for reply_to in (other.id + 100, 999, 2**64 - 1):
            cid = await a.send(room.id, "re", reply_to_id=reply_to)
            frame = await a.wait_for(lambda f: f.send_error is not None or f.ack is not None)
            assert frame.send_error is not None
            assert (frame.send_error.client_message_id, frame.send_error.code) == (
                cid,
                "INVALID_ARGUMENT",
            )
        # Chat `elsewhere` has message 1, and so has this room: a reply to
        # "message 2 of elsewhere" from here names this room's message 2.
        assert other.id == 1
        cid = await a.send(room.id, "re", reply_to_id=2)
        frame = await a.wait_for(lambda f: f.send_error is not None or f.ack is not None)
        assert frame.send_error is not None and frame.send_error.code == "INVALID_ARGUMENT"
    assert await history(room.alice, room.id) == before


# ---- idempotent -----------------------------------------------------------------


async def test_a_retry_with_the_same_request_id_acts_once(room: Room) -> None:
    async with room.alice.session() as a:
        target = await send(a, room.id, "retry me")
    rid = new_request_id()
    first = await room.bob.react(room.id, target.id, "🦀", request_id=rid)
    again = await room.bob.react(room.id, target.id, "🦀", request_id=rid)
    assert again == first and len(first.reactions) == 1  # not toggled off again
    rid = new_request_id()
    edit = await room.alice.edit_message(room.id, target.id, "once", request_id=rid)
    assert await room.alice.edit_message(room.id, target.id, "twice", request_id=rid) == edit
    rid = new_request_id()
    gone = await room.alice.delete_message(room.id, target.id, request_id=rid)
    assert await room.alice.delete_message(room.id, target.id, request_id=rid) == gone
    changes = await room.alice.get_changes(room.id, 0)
    assert [m.change_seq for m in changes.messages] == [3]  # 1 react, 2 edit, 3 delete


# ---- paging and storage ------------------------------------------------------------


async def test_get_changes_pages_oldest_change_first(room: Room) -> None:
    async with room.alice.session() as a:
        sent = [await send(a, room.id, f"m{i}") for i in range(5)]
    for m in reversed(sent):
        await room.alice.edit_message(room.id, m.id, m.text + "!")
    await room.alice.edit_message(room.id, sent[4].id, "newest")  # its change moves last
    pages, after = [], 0
    while True:
        page = await room.bob.get_changes(room.id, after, limit=2)
        pages.append([m.id for m in page.messages])
        if not page.has_more:
            break
        after = page.messages[-1].change_seq
    assert pages == [[4, 3], [2, 1], [5]]


def _texts(conn: Connection, chat_id: int) -> list[str]:
    query = sa.select(messages.c.text).where(messages.c.chat_id == chat_id)
    return [row.text for row in conn.execute(query)]


async def test_a_deleted_text_is_gone_from_the_database(crab: Crab, room: Room) -> None:
    async with room.alice.session() as a:
        secret = await send(a, room.id, "the password is hunter2")
    await room.alice.edit_message(room.id, secret.id, "the password is hunter2, oops")
    await room.alice.delete_message(room.id, secret.id)
    texts = await crab.database.read(_texts, room.id)
    assert texts == [""]
    assert not any("hunter2" in t for t in texts)


# ---- catching up --------------------------------------------------------------------


async def _away_then_back(
    room: Room, while_away: Any, sent_before: int = 8, change_first: bool = True
) -> None:
    """Bob sees `sent_before` messages live (and one change), goes offline
    with his cursors; `while_away(alice_session, messages)` runs; bob comes
    back with his cursors and his view equals the server's history."""
    alice, bob = room.alice, room.bob
    view = View()
    async with alice.session() as a:
        async with bob.session() as b:
            sent = [await send(a, room.id, f"m{i}") for i in range(sent_before)]
            if change_first:
                await alice.react(room.id, sent[0].id, "👀")
            frames = await b.collect(
                lambda f: f.message is not None or f.message_changed is not None,
                sent_before + int(change_first),
            )
            view.apply(frames)
        await while_away(a, sent)
    async with bob.session(view.cursors(), view.changes()) as b:
        assert any(f.message_changed is not None for f in b.backlog)  # replayed, not reread
        view.apply(b.backlog)
    assert view.chat(room.id) == await history(bob, room.id)


async def _many_changes(room: Room, sent: list[pb.Message]) -> None:
    alice, bob = room.alice, room.bob
    await alice.edit_message(room.id, sent[1].id, "edited once")
    await alice.delete_message(room.id, sent[2].id)
    await alice.react(room.id, sent[3].id, "🎉")
    await bob.react(room.id, sent[4].id, "👍")  # bob's own, from another device
    await alice.react(room.id, sent[4].id, "😮")
    await alice.react(room.id, sent[4].id, "😮")  # and off again
    await alice.edit_message(room.id, sent[5].id, "first edit")
    await alice.edit_message(room.id, sent[5].id, "second edit")


async def test_resume_catches_up_on_edits_deletes_and_reactions(room: Room) -> None:
    async def away(a: SessionStream, sent: list[pb.Message]) -> None:
        await send(a, room.id, "re: m5", reply_to_id=sent[5].id)  # m5 is edited below
        await _many_changes(room, sent)

    await _away_then_back(room, away)


async def test_resume_catches_up_from_change_zero_when_bob_saw_none(room: Room) -> None:
    async def away(a: SessionStream, sent: list[pb.Message]) -> None:
        await _many_changes(room, sent)

    await _away_then_back(room, away, change_first=False)


@pytest.mark.slow  # a few seconds: over one backfill page of messages
async def test_resume_catches_up_with_changes_among_more_than_a_page_of_messages(
    room: Room,
) -> None:
    async def away(a: SessionStream, sent: list[pb.Message]) -> None:
        await _many_changes(room, sent)
        fresh = []
        for i in range(520):
            fresh.append(await send(a, room.id, f"n{i}", reply_to_id=sent[2].id if i == 3 else 0))
            if i % 100 == 50:
                await room.alice.edit_message(room.id, fresh[-1].id, f"n{i} edited")
                await room.bob.react(room.id, sent[7].id, chr(0x1F600 + i // 100))
        await room.alice.delete_message(room.id, fresh[0].id)

    await _away_then_back(room, away)


async def test_a_garbage_change_cursor_neither_fails_nor_skips(room: Room) -> None:
    async with room.alice.session() as a:
        m = await send(a, room.id, "hi")
    await room.alice.edit_message(room.id, m.id, "hi!")
    async with room.bob.session({room.id: 0}, {room.id: 2**64 - 1}) as b:
        assert b.ready is not None
        await room.alice.edit_message(room.id, m.id, "hi!!")
        # A claim beyond the chat's newest change is not trusted: the next
        # live change still arrives.
        seen = await changed(b, m.id, 2)
        assert seen.text == "hi!!"


async def test_a_jump_in_change_numbers_is_filled_from_the_database(crab: Crab, room: Room) -> None:
    """Events from two workers can cross: the third change arrives first.
    The stream reads the changes after the newest it sent, sends them in
    change order, and skips the late events they cover."""
    async with room.alice.session() as a:
        sent = [await send(a, room.id, f"m{i}") for i in range(3)]
        session = await crab.hub.connect(Caller(room.alice.user.id, 0), [])
        try:
            assert [type(x) for x in await session.next_batch() or []] == [live.Ready]
            for m in sent:
                await room.alice.edit_message(room.id, m.id, m.text + " edited")
            await changed(a, sent[2].id, 3)  # so the session has all three events too
            crossed = list(session._items)
            assert [type(x) for x in crossed] == [ev.MessageChanged] * 3
            session._items.clear()
            session._items.extend(reversed(crossed))
            batch = await session.next_batch() or []
        finally:
            await crab.hub.disconnect(session)
    assert [(type(x), x.message.change_seq) for x in batch if isinstance(x, live.Changed)] == [
        (live.Changed, 1),
        (live.Changed, 2),
        (live.Changed, 3),
    ]
    assert len(batch) == 3


def _file_bytes(path: Path) -> bytes:
    """The SQLite database file once the WAL is checkpointed into it."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


async def test_a_deleted_text_is_gone_from_the_sqlite_file(crab: Crab, room: Room) -> None:
    if crab.database.dialect != "sqlite":
        pytest.skip("the bytes of a SQLite file")
    async with room.alice.session() as a:
        secret = await send(a, room.id, "the code is zebra-4471-quartz")
    assert b"zebra-4471" in _file_bytes(crab.settings.data_dir / "crab.db")  # the control
    await room.alice.delete_message(room.id, secret.id)
    assert b"zebra-4471" not in _file_bytes(crab.settings.data_dir / "crab.db")
