"""More of the contract through a real server and real clients: rejecting,
personal conversations, leaving, search, the chat list, accounts, and
members joining mid-conversation. Every wait is on a frame, never a sleep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import create_room, is_message, join
from tests.helpers.server import PASSWORD, ClientFactory


async def refused(call: Awaitable[object]) -> Status:
    with pytest.raises(GRPCError) as err:
        await call
    return err.value.status


async def my_chats(client: CrabClient) -> list[pb.ChatSummary]:
    return (await client.chats.my_chats(pb.Empty(), metadata=client.metadata)).chats


def get_chat(client: CrabClient, chat_id: int) -> Awaitable[pb.ChatDetail]:
    return client.chats.get_chat(pb.ChatRequest(chat_id=chat_id), metadata=client.metadata)


async def send_acked(live: SessionStream, chat_id: int, *texts: str) -> list[pb.Message]:
    """Sends each text and waits until every one is stored."""
    cids = [await live.send(chat_id, text) for text in texts]
    acks = await live.collect(
        lambda f: f.ack is not None and f.ack.client_message_id in cids, len(cids)
    )
    return sorted((f.ack.message for f in acks), key=lambda m: m.id)


async def frames_until(
    live: SessionStream, matches: Callable[[pb.ServerFrame], bool]
) -> list[pb.ServerFrame]:
    """Every frame up to and including the first that matches."""
    seen: list[pb.ServerFrame] = []
    while not seen or not matches(seen[-1]):
        seen.append(await live.wait_for(lambda f: True))
    return seen


async def test_rejected_room_invite(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "secret")
    async with alice.session() as a_live, bob.session() as b_live:
        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
        )
        await b_live.wait_for(lambda f: f.invite_received is not None)
        answer = await bob.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=False), metadata=bob.metadata
        )
        assert not answer.accepted and answer.chat is None
        told = await a_live.wait_for(lambda f: f.invite_answered is not None)
        assert told.invite_answered.invite.id == invite.id
        assert told.invite_answered.accepted is False and told.invite_answered.chat is None
        # Bob joined nothing: up to his own new room, his stream heard only
        # the answer, and of no other chat.
        own = await create_room(bob, "bobs")
        seen = await frames_until(b_live, lambda f: f.chat_joined is not None)
        assert seen[-1].chat_joined.id == own.id
        told = [f.invite_answered for f in seen if f.invite_answered is not None]
        assert [(a.invite.id, a.accepted) for a in told] == [(invite.id, False)]
        assert [f for f in seen[:-1] if f.invite_answered is None] == []

    assert await refused(get_chat(bob, room.id)) == Status.NOT_FOUND
    assert [s.chat.id for s in await my_chats(bob)] == [own.id]
    detail = await alice.chats.get_chat(pb.ChatRequest(chat_id=room.id), metadata=alice.metadata)
    assert [u.id for u in detail.members] == [alice.user.id]
    for who in (alice, bob):
        pending = await who.invites.my_invites(pb.Empty(), metadata=who.metadata)
        assert pending.received == [] and pending.sent == []
    # The invite is gone, so asking again is allowed.
    again = await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
    )
    assert again.invitee.id == bob.user.id and again.chat.id == room.id


async def test_personal_conversation(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    async with alice.session() as a_live, bob.session() as b_live:
        invite = await alice.invites.invite_to_direct(
            pb.DirectInviteRequest(user_id=bob.user.id), metadata=alice.metadata
        )
        assert invite.chat is None
        seen = await b_live.wait_for(lambda f: f.invite_received is not None)
        assert seen.invite_received.id == invite.id and seen.invite_received.chat is None
        assert seen.invite_received.inviter.id == alice.user.id

        answer = await bob.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
        )
        assert answer.accepted and answer.chat is not None
        assert answer.chat.kind == pb.ChatKind.DIRECT and answer.chat.name == alice.user.username
        chat_id = answer.chat.id

        # Each side's open stream carries the chat, named for the other person.
        for live, other in ((a_live, bob), (b_live, alice)):
            joined = await live.wait_for(lambda f: f.chat_joined is not None)
            assert joined.chat_joined.id == chat_id
            assert joined.chat_joined.kind == pb.ChatKind.DIRECT
            assert joined.chat_joined.name == other.user.username

        await a_live.send(chat_id, "hi bob")
        got = await b_live.wait_for(is_message)
        assert got.message.chat_id == chat_id and got.message.text == "hi bob"
        await b_live.send(chat_id, "hi alice")
        got = await a_live.wait_for(lambda f: is_message(f) and f.message.sender.id == bob.user.id)
        assert got.message.text == "hi alice" and got.message.id == 2

    for who, other in ((alice, bob), (bob, alice)):
        (summary,) = await my_chats(who)
        assert summary.chat.id == chat_id and summary.chat.kind == pb.ChatKind.DIRECT
        assert summary.chat.name == other.user.username
        assert summary.last_message.text == "hi alice"


async def test_leaving_a_room_stops_its_traffic(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "leaving")
    other = await create_room(alice, "staying")
    await join(alice, bob, room)
    await join(alice, bob, other)
    async with alice.session() as a_live, bob.session() as b_live:
        await bob.chats.leave_chat(pb.ChatRequest(chat_id=room.id), metadata=bob.metadata)
        left = await b_live.wait_for(lambda f: f.chat_left is not None)
        assert left.chat_left.chat_id == room.id
        gone = await a_live.wait_for(lambda f: f.member_left is not None)
        assert gone.member_left.chat_id == room.id and gone.member_left.user.id == bob.user.id

        await send_acked(a_live, room.id, "are you there?", "bob?", "hello?")
        await send_acked(a_live, other.id, "over here")
        # Ids are in order per chat and the room's messages came first, so
        # if any had reached Bob it would be ahead of this one.
        first = await b_live.wait_for(is_message)
        assert first.message.chat_id == other.id and first.message.text == "over here"

    assert await refused(get_chat(bob, room.id)) == Status.NOT_FOUND
    history = bob.chats.get_messages(pb.GetMessagesRequest(chat_id=room.id), metadata=bob.metadata)
    assert await refused(history) == Status.NOT_FOUND
    assert [s.chat.id for s in await my_chats(bob)] == [other.id]
    detail = await alice.chats.get_chat(pb.ChatRequest(chat_id=room.id), metadata=alice.metadata)
    assert [u.id for u in detail.members] == [alice.user.id]


async def test_search_users(connect: ClientFactory) -> None:
    people: dict[str, CrabClient] = {}
    for username, display in [
        ("alice1", ""),
        ("alicia", ""),
        ("bob", ""),
        ("malik", ""),
        ("actor", "Al Pacino"),
    ]:
        people[username] = client = await connect(sign_up=False)
        await client.sign_up(username, PASSWORD, display)
    bob = people["bob"]

    async def search(query: str, limit: int = 0) -> list[str]:
        request = pb.SearchUsersRequest(query=query, limit=limit)
        found = await bob.users.search_users(request, metadata=bob.metadata)
        return [u.username for u in found.users]

    # Username prefix, then display-name prefix, then anywhere in the name.
    assert await search("al") == ["alice1", "alicia", "actor", "malik"]
    assert await search("ali") == ["alice1", "alicia", "malik"]
    assert await search("ALI") == ["alice1", "alicia", "malik"]
    assert await search("ali", limit=2) == ["alice1", "alicia"]
    assert await search("alicia") == ["alicia"]
    assert await search("lic") == ["alice1", "alicia"]
    assert await search("pacino") == ["actor"]
    assert await search("bo") == ["bob"]
    assert await search("") == []
    assert await search("   ") == []
    assert await search("nobody") == []
    assert await search("%") == [] and await search("_") == []


async def test_my_chats_last_message_unread_and_order(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    first = await create_room(alice, "first")
    second = await create_room(alice, "second")
    await join(alice, bob, first)
    await join(alice, bob, second)

    async def summaries(who: CrabClient) -> dict[int, pb.ChatSummary]:
        return {s.chat.id: s for s in await my_chats(who)}

    async def order(who: CrabClient) -> list[int]:
        return [s.chat.id for s in await my_chats(who)]

    async with alice.session() as a_live, bob.session() as b_live:
        await send_acked(a_live, first.id, "one", "two", "three")
        mine = (await summaries(bob))[first.id]
        assert mine.unread_count == 3 and mine.last_read_id == 0
        assert mine.last_message.text == "three" and mine.last_message.id == 3
        assert mine.last_message.sender.id == alice.user.id
        assert (await summaries(bob))[second.id].last_message is None
        # Own messages never count as unread.
        assert (await summaries(alice))[first.id].unread_count == 0

        async def mark_read(message_id: int) -> pb.ChatSummary:
            request = pb.MarkReadRequest(chat_id=first.id, message_id=message_id)
            await bob.chats.mark_read(request, metadata=bob.metadata)
            return (await summaries(bob))[first.id]

        read = await mark_read(2)
        assert read.unread_count == 1 and read.last_read_id == 2
        read = await mark_read(1)  # never moves back
        assert read.unread_count == 1 and read.last_read_id == 2

        await send_acked(b_live, first.id, "four")
        assert (await summaries(bob))[first.id].unread_count == 0
        assert (await summaries(alice))[first.id].unread_count == 1

        # Most recently active first.
        assert await order(bob) == await order(alice) == [first.id, second.id]
        await send_acked(a_live, second.id, "newer")
        assert await order(bob) == await order(alice) == [second.id, first.id]
        await send_acked(b_live, first.id, "newest")
        assert await order(bob) == [first.id, second.id]
        newest = await create_room(alice, "brand new")
        assert await order(alice) == [newest.id, first.id, second.id]


async def test_who_am_i_get_user_and_refresh(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect(sign_up=False)
    await bob.sign_up("bobby", PASSWORD, "Bob B.")

    me = await alice.accounts.who_am_i(pb.Empty(), metadata=alice.metadata)
    assert me == alice.user
    found = await alice.users.get_user(
        pb.GetUserRequest(user_id=bob.user.id), metadata=alice.metadata
    )
    assert (found.id, found.username, found.display_name) == (bob.user.id, "bobby", "Bob B.")

    assert alice.tokens is not None
    old = alice.tokens
    await alice.refresh()
    # (The access token may come out identical within the same second.)
    assert alice.tokens.refresh_token != old.refresh_token
    assert alice.tokens.user == old.user
    me = await alice.accounts.who_am_i(pb.Empty(), metadata=alice.metadata)
    assert me.id == old.user.id
    await alice.refresh()  # the rotated token works once
    stale = alice.accounts.refresh(pb.RefreshRequest(refresh_token=old.refresh_token))
    assert await refused(stale) == Status.UNAUTHENTICATED
    assert await refused(alice.accounts.who_am_i(pb.Empty())) == Status.UNAUTHENTICATED


async def test_member_joining_mid_conversation(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    carol = await connect("carol")
    room = await create_room(alice, "ongoing")
    await join(alice, bob, room)
    async with alice.session() as a_live, bob.session() as b_live, carol.session() as c_live:
        await send_acked(a_live, room.id, "before carol")
        await b_live.wait_for(is_message)
        await send_acked(b_live, room.id, "still before")

        await join(alice, carol, room)
        for live in (a_live, b_live):
            joined = await live.wait_for(lambda f: f.member_joined is not None)
            assert joined.member_joined.chat_id == room.id
            assert joined.member_joined.user.id == carol.user.id
        joined = await c_live.wait_for(lambda f: f.chat_joined is not None)
        assert joined.chat_joined.id == room.id

        await send_acked(a_live, room.id, "welcome carol")
        got = await c_live.wait_for(is_message)
        assert got.message.text == "welcome carol" and got.message.id == 3
        await c_live.send(room.id, "thanks")
        for live in (a_live, b_live):
            got = await live.wait_for(
                lambda f: is_message(f) and f.message.sender.id == carol.user.id
            )
            assert got.message.text == "thanks" and got.message.id == 4

    detail = await carol.chats.get_chat(pb.ChatRequest(chat_id=room.id), metadata=carol.metadata)
    assert {u.id for u in detail.members} == {alice.user.id, bob.user.id, carol.user.id}


async def test_message_ids_beyond_the_databases_range_are_safe(connect: ClientFactory) -> None:
    """The wire's uint64 ids can exceed BIGINT: they mean "after everything"."""
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="big"), metadata=alice.metadata)
    huge = 2**64 - 1
    async with alice.session() as live:
        await live.send(room.id, "only one")
        await live.wait_for(lambda f: f.ack is not None)
    page = await alice.chats.get_messages(
        pb.GetMessagesRequest(chat_id=room.id, before_id=huge), metadata=alice.metadata
    )
    assert [m.text for m in page.messages] == ["only one"]
    await alice.chats.mark_read(
        pb.MarkReadRequest(chat_id=room.id, message_id=huge), metadata=alice.metadata
    )
    async with alice.session({room.id: huge}) as live:
        assert live.backlog == []  # nothing after "after everything"
