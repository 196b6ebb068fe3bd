"""The whole messaging contract, through a real server and real clients."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from grpclib import GRPCError
from grpclib.const import Status
from sqlalchemy.engine import Connection

from crab.core.app import Crab
from crab.core.domain import events as ev
from crab.core.domain.models import Message, User
from crab.core.storage import messages as message_store
from crab.proto.crab import v1 as pb
from tests.helpers.server import ClientFactory


def is_message(frame: pb.ServerFrame) -> bool:
    return frame.message is not None


async def test_room_invite_accept_and_live_messages(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    async with alice.session() as a_live, bob.session() as b_live:
        room = await alice.chats.create_room(
            pb.CreateRoomRequest(name="general"), metadata=alice.metadata
        )
        assert room.kind == pb.ChatKind.ROOM and room.name == "general"
        joined = await a_live.wait_for(lambda f: f.chat_joined is not None)
        assert joined.chat_joined.id == room.id

        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
        )
        seen = await b_live.wait_for(lambda f: f.invite_received is not None)
        assert seen.invite_received.id == invite.id
        assert seen.invite_received.chat.id == room.id

        answer = await bob.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
        )
        assert answer.accepted and answer.chat.id == room.id
        # Bob's already-open stream now carries the room.
        joined = await b_live.wait_for(lambda f: f.chat_joined is not None)
        assert joined.chat_joined.id == room.id
        told = await a_live.wait_for(lambda f: f.invite_answered is not None)
        assert told.invite_answered.accepted

        cid = await a_live.send(room.id, "hello bob")
        ack = await a_live.wait_for(lambda f: f.ack is not None)
        assert ack.ack.client_message_id == cid and ack.ack.message.id == 1
        got = await b_live.wait_for(is_message)
        assert got.message.text == "hello bob" and got.message.sender.id == alice.user.id

        await b_live.send(room.id, "hi alice")
        got = await a_live.wait_for(lambda f: is_message(f) and f.message.sender.id == bob.user.id)
        assert got.message.text == "hi alice" and got.message.id == 2

        # A re-send (same client id) is answered with the first message and
        # published again; streams that have it already skip it.
        await a_live.send(room.id, "hello bob", client_message_id=cid)
        again = await a_live.wait_for(lambda f: f.ack is not None)
        assert again.ack.message.id == 1
        await a_live.send(room.id, "after the re-send")
        got = await b_live.wait_for(
            lambda f: is_message(f) and f.message.sender.id == alice.user.id
        )
        assert (got.message.id, got.message.text) == (3, "after the re-send")


async def test_history_paging_to_first_message(connect: ClientFactory) -> None:
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="log"), metadata=alice.metadata)
    async with alice.session() as live:
        for i in range(1, 121):
            await live.send(room.id, f"message {i}")
        await live.collect(lambda f: f.ack is not None, 120)
    seen: list[int] = []
    before = 0
    while True:
        page = await alice.chats.get_messages(
            pb.GetMessagesRequest(chat_id=room.id, before_id=before, limit=50),
            metadata=alice.metadata,
        )
        seen.extend(m.id for m in page.messages)
        # Sent without waiting for acks, still stored in the order sent.
        assert all(m.text == f"message {m.id}" for m in page.messages)
        if not page.has_more:
            break
        before = page.messages[-1].id
    assert seen == list(range(120, 0, -1))
    with pytest.raises(GRPCError) as err:
        await alice.chats.get_messages(
            pb.GetMessagesRequest(chat_id=room.id, limit=201), metadata=alice.metadata
        )
    assert err.value.status == Status.INVALID_ARGUMENT


async def test_resume_after_disconnect_has_no_gap_or_duplicate(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    invite = await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
    )
    await bob.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
    )

    async with alice.session() as a_live:
        async with bob.session() as b_live:
            for i in range(5):
                await a_live.send(room.id, f"before {i}")
            got = await b_live.collect(is_message, 5)
            last_seen = got[-1].message.id
        for i in range(7):
            await a_live.send(room.id, f"while away {i}")
        await a_live.collect(lambda f: f.ack is not None, 12)

        async with bob.session({room.id: last_seen}) as b_live:
            replayed = [f.message for f in b_live.backlog if f.message]
            assert [m.text for m in replayed] == [f"while away {i}" for i in range(7)]
            await a_live.send(room.id, "live again")
            got = await b_live.wait_for(is_message)
            assert got.message.text == "live again"
            assert got.message.id == replayed[-1].id + 1


async def test_resend_same_client_id_returns_first(connect: ClientFactory) -> None:
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    async with alice.session() as live:
        await live.send(room.id, "once", client_message_id="abc")
        first = await live.wait_for(lambda f: f.ack is not None)
        await live.send(room.id, "once", client_message_id="abc")
        second = await live.wait_for(lambda f: f.ack is not None)
    assert first.ack.message.id == second.ack.message.id == 1
    page = await alice.chats.get_messages(
        pb.GetMessagesRequest(chat_id=room.id), metadata=alice.metadata
    )
    assert [m.text for m in page.messages] == ["once"]


async def test_concurrent_streams_do_not_block(connect: ClientFactory) -> None:
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    async with alice.session() as one, alice.session() as two:
        await one.send(room.id, "to both devices")
        frames = await asyncio.gather(one.wait_for(is_message), two.wait_for(is_message))
    assert {f.message.text for f in frames} == {"to both devices"}


async def test_events_out_of_order_are_filled_from_storage(
    crab: Crab, connect: ClientFactory
) -> None:
    """Two workers can publish out of order: a stream that sees id 3 before
    1 and 2 reads them from the database first (one read shared by every
    stream of the replica), then skips the late events."""
    alice = await connect("alice")
    bob = await connect("bob")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
    )
    (invite,) = (await bob.invites.my_invites(pb.Empty(), metadata=bob.metadata)).received
    await bob.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
    )
    async with alice.session() as a_live, bob.session() as b_live:
        # Stored as a worker would, but the events of 1 and 2 come last.
        sender = User(alice.user.id, alice.user.username, alice.user.display_name)
        stored: list[Message] = []

        def store_three(conn: Connection) -> None:
            first = message_store.next_seqs(conn, room.id, 3)
            for seq in range(first, first + 3):
                at = datetime.now(UTC)
                row = message_store.row(room.id, seq, sender.id, f"c{seq}", f"m{seq}", at)
                message_store.insert_many(conn, [row])
                stored.append(Message(room.id, seq, sender, f"m{seq}", at, f"c{seq}"))

        await crab.database.write(store_three)
        for message in (stored[2], stored[0], stored[1]):
            await crab.broker.publish(ev.chat_topic(room.id), ev.MessageCreated(message))
        for live in (a_live, b_live):
            got = await live.collect(is_message, 3)
            assert [f.message.text for f in got] == ["m1", "m2", "m3"]
        # Nothing more (no duplicate of 1 or 2): the next message is 4.
        await a_live.send(room.id, "m4")
        got = await b_live.wait_for(is_message)
        assert (got.message.id, got.message.text) == (4, "m4")
