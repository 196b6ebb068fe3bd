"""Every command is idempotent: a retry with the same request id (or a
broker redelivery of the same command) returns the first result instead of
acting twice. Through a real server and real clients; redeliveries through
the in-process server's own broker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, new_request_id
from crab.core.app import Crab
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.storage import command_results
from crab.errors import NotFound
from crab.proto.crab import v1 as pb
from tests.helpers.server import ClientFactory


async def my_rooms(client: CrabClient) -> list[int]:
    found = await client.chats.my_chats(pb.Empty(), metadata=client.metadata)
    return [s.chat.id for s in found.chats]


async def invite(alice: CrabClient, bob: CrabClient, room_id: int, request_id: str) -> pb.Invite:
    request = pb.RoomInviteRequest(chat_id=room_id, user_id=bob.user.id, request_id=request_id)
    return await alice.invites.invite_to_room(request, metadata=alice.metadata)


async def test_the_same_create_room_request_id_twice_makes_one_room(
    connect: ClientFactory,
) -> None:
    alice = await connect("alice")
    request = pb.CreateRoomRequest(name="ops", request_id=new_request_id())
    first = await alice.chats.create_room(request, metadata=alice.metadata)
    again = await alice.chats.create_room(request, metadata=alice.metadata)
    assert again == first
    assert await my_rooms(alice) == [first.id]
    other = pb.CreateRoomRequest(name="ops", request_id=new_request_id())
    assert (await alice.chats.create_room(other, metadata=alice.metadata)).id != first.id


async def test_without_a_request_id_each_call_is_its_own(connect: ClientFactory) -> None:
    alice = await connect("alice")
    request = pb.CreateRoomRequest(name="ops")
    first = await alice.chats.create_room(request, metadata=alice.metadata)
    second = await alice.chats.create_room(request, metadata=alice.metadata)
    assert sorted(await my_rooms(alice)) == sorted([first.id, second.id])


async def test_request_ids_belong_to_their_user(connect: ClientFactory) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    shared = new_request_id()
    mine = await alice.chats.create_room(
        pb.CreateRoomRequest(name="alice's", request_id=shared), metadata=alice.metadata
    )
    theirs = await bob.chats.create_room(
        pb.CreateRoomRequest(name="bob's", request_id=shared), metadata=bob.metadata
    )
    assert theirs.id != mine.id and theirs.name == "bob's"
    assert await my_rooms(bob) == [theirs.id]


async def test_invite_retried_after_success_returns_the_same_invite(
    connect: ClientFactory,
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    request_id = new_request_id()
    first = await invite(alice, bob, room.id, request_id)
    assert await invite(alice, bob, room.id, request_id) == first  # not ALREADY_EXISTS
    with pytest.raises(GRPCError) as err:  # a new action is judged on today's state
        await invite(alice, bob, room.id, new_request_id())
    assert err.value.status is Status.ALREADY_EXISTS

    direct = pb.DirectInviteRequest(user_id=bob.user.id, request_id=new_request_id())
    to_bob = await alice.invites.invite_to_direct(direct, metadata=alice.metadata)
    assert await alice.invites.invite_to_direct(direct, metadata=alice.metadata) == to_bob


async def test_answer_retried_after_success_is_the_same_answer_never_not_found(
    connect: ClientFactory,
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    sent = await invite(alice, bob, room.id, new_request_id())
    answer = pb.AnswerInviteRequest(invite_id=sent.id, accept=True, request_id=new_request_id())
    first = await bob.invites.answer_invite(answer, metadata=bob.metadata)
    assert first.chat is not None and first.chat.id == room.id
    assert await bob.invites.answer_invite(answer, metadata=bob.metadata) == first
    assert await my_rooms(bob) == [room.id]
    with pytest.raises(GRPCError) as err:  # another answer: the invite is gone
        await bob.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=sent.id, accept=True), metadata=bob.metadata
        )
    assert err.value.status is Status.NOT_FOUND


async def test_a_failed_command_is_not_remembered(connect: ClientFactory) -> None:
    """Errors roll back and store nothing: a retry sees the state of now."""
    alice, bob = await connect("alice"), await connect("bob")
    request_id = new_request_id()
    with pytest.raises(GRPCError) as err:
        await invite(alice, bob, 999_999, request_id)
    assert err.value.status is Status.NOT_FOUND
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    assert (await invite(alice, bob, room.id, request_id)).chat.id == room.id


@pytest.mark.parametrize(
    "request_id",
    ["x" * 65, "bad\x1bid", "tab\tid", "nul\x00"],
    ids=["too long", "escape", "tab", "nul"],
)
async def test_a_bad_request_id_is_invalid_argument(
    connect: ClientFactory, request_id: str
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    calls = [
        alice.chats.create_room(
            pb.CreateRoomRequest(name="r", request_id=request_id), metadata=alice.metadata
        ),
        alice.invites.invite_to_direct(
            pb.DirectInviteRequest(user_id=bob.user.id, request_id=request_id),
            metadata=alice.metadata,
        ),
        alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=1, user_id=bob.user.id, request_id=request_id),
            metadata=alice.metadata,
        ),
        alice.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=1, accept=True, request_id=request_id),
            metadata=alice.metadata,
        ),
    ]
    for call in calls:
        with pytest.raises(GRPCError) as err:
            await call
        assert err.value.status is Status.INVALID_ARGUMENT
        assert "request_id" in (err.value.message or "")
    assert await my_rooms(alice) == []


async def test_a_redelivered_leave_answers_as_the_first_did(
    crab: Crab, connect: ClientFactory
) -> None:
    """LeaveChat has no request id on the wire: the server makes one per
    call, so a redelivery of that command (the same bytes again) is caught."""
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    leave = cmd.LeaveChat(alice.user.id, room.id, new_request_id())
    assert await crab.broker.request(leave) is None
    assert await crab.broker.request(leave) is None  # delivered again: not NOT_FOUND
    assert await my_rooms(alice) == []
    with pytest.raises(NotFound):  # a new leave is judged on today's state
        await crab.broker.request(cmd.LeaveChat(alice.user.id, room.id, new_request_id()))


async def test_results_older_than_a_day_are_purged(crab: Crab) -> None:
    old = now() - timedelta(days=1, minutes=1)
    await crab.database.write(command_results.insert, "1:old", b"{}", old)
    await crab.database.write(command_results.insert, "1:new", b"{}", now())
    assert await crab.database.write(command_results.purge, now() - timedelta(days=1)) == 1
    assert await crab.database.read(command_results.find, "1:old") is None
    assert await crab.database.read(command_results.find, "1:new") == b"{}"
