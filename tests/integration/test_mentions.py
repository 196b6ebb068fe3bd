"""Mentions through a real server and real clients: `@member` and `@room`
parsed and stored by the server, the same on every read path (the ack,
live frames, history, replay, search), replaced by an edit, dropped by a
delete, and counted per chat in MyChats until read. `make test-postgres`
(CRAB_TEST_DATABASE=postgresql) runs it on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.core.domain.mentions import MAX_MENTIONS
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages, join_room
from tests.helpers.server import ClientFactory


@dataclass
class Room:
    alice: CrabClient
    bob: CrabClient
    carol: CrabClient  # not a member
    id: int


@pytest.fixture
async def room(connect: ClientFactory) -> Room:
    alice, bob, carol = [await connect(n) for n in ("alice", "bob", "carol")]
    return Room(alice, bob, carol, await join_room(alice, bob))


async def send(live: SessionStream, chat_id: int, text: str) -> pb.Message:
    cid = await live.send(chat_id, text)
    frame = await live.wait_for(
        lambda f: (
            (f.ack is not None and f.ack.client_message_id == cid)
            or (f.send_error is not None and f.send_error.client_message_id == cid)
        )
    )
    assert frame.ack is not None and frame.ack.message is not None, frame.send_error
    return frame.ack.message


def said(m: pb.Message) -> tuple[list[int], bool]:
    return list(m.mention_user_ids), m.mentions_room


async def mention_count(client: CrabClient, chat_id: int) -> int:
    (summary,) = [s for s in await client.my_chats() if s.chat.id == chat_id]
    return summary.mention_count


def name(client: CrabClient) -> str:
    return client.user.username


async def test_a_member_and_room_are_mentioned_on_every_read_path(room: Room) -> None:
    alice, bob, carol = room.alice, room.bob, room.carol
    text = f"@{name(bob).upper()} and @{name(carol)} and me @{name(alice)}: @room, look"
    async with alice.session() as a, bob.session() as b:
        sent = await send(a, room.id, text)
        # bob (any case); carol is no member; alice is the sender.
        assert said(sent) == ([bob.user.id], True)
        frame = await b.wait_for(lambda f: f.message is not None and f.message.id == sent.id)
        assert frame.message is not None and said(frame.message) == said(sent)
        plain = await send(a, room.id, "no one")
        assert said(plain) == ([], False)
    (first, second) = await all_messages(bob, room.id)
    assert (said(first), said(second)) == (said(sent), ([], False))
    # Replayed to a client that saw neither.
    async with bob.session({room.id: 0}) as b:
        replayed = [f.message for f in b.backlog if f.message is not None]
    assert [said(m) for m in replayed] == [said(sent), ([], False)]
    found = await bob.search_messages("look")
    assert [said(h.message) for h in found.hits if h.message is not None] == [said(sent)]


async def test_mention_count_counts_unread_mentions_of_me_until_i_read(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a:
        await send(a, room.id, f"hi @{name(bob)}")
        await send(a, room.id, f"@room and @{name(bob)} again")  # counts once
        await send(a, room.id, "nothing for bob")
        newest = await send(a, room.id, "@room")
    assert await mention_count(bob, room.id) == 3
    assert await mention_count(alice, room.id) == 0  # her own @room is not for her
    await bob.mark_read(room.id, newest.id - 1)
    assert await mention_count(bob, room.id) == 1
    await bob.mark_read(room.id, newest.id)
    assert await mention_count(bob, room.id) == 0
    async with bob.session() as b:
        await send(b, room.id, f"@room thanks @{name(alice)}")
    assert await mention_count(alice, room.id) == 1


async def test_an_edit_replaces_the_mentions_and_a_delete_drops_them(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a:
        sent = await send(a, room.id, "lunch?")
    assert await mention_count(bob, room.id) == 0

    added = await alice.edit_message(room.id, sent.id, f"lunch, @{name(bob)}?")
    assert said(added) == ([bob.user.id], False)
    assert await mention_count(bob, room.id) == 1
    async with bob.session({room.id: sent.id}, {room.id: 0}) as b:
        (changed,) = [f.message_changed for f in b.backlog if f.message_changed is not None]
    assert said(changed) == ([bob.user.id], False)

    room_only = await alice.edit_message(room.id, sent.id, "lunch, @room?")
    assert said(room_only) == ([], True)
    assert await mention_count(bob, room.id) == 1
    removed = await alice.edit_message(room.id, sent.id, "lunch, anyone? (me@example.com)")
    assert said(removed) == ([], False)
    assert await mention_count(bob, room.id) == 0

    await alice.edit_message(room.id, sent.id, f"@room @{name(bob)}")
    assert await mention_count(bob, room.id) == 1
    gone = await alice.delete_message(room.id, sent.id)
    assert said(gone) == ([], False)
    assert await mention_count(bob, room.id) == 0
    (stored,) = await all_messages(bob, room.id)
    assert said(stored) == ([], False)


async def test_a_mention_of_someone_who_joins_later_is_not_stored(
    room: Room, connect: ClientFactory
) -> None:
    alice, carol = room.alice, room.carol
    async with alice.session() as a:
        early = await send(a, room.id, f"@{name(carol)} will join")
    invite = await alice.invite_to_room(room.id, carol.user.id)
    await carol.answer_invite(invite.id, accept=True)
    async with alice.session() as a:
        late = await send(a, room.id, f"@{name(carol)} welcome")
    assert (said(early), said(late)) == (([], False), ([carol.user.id], False))
    assert await mention_count(carol, room.id) == 1


@pytest.mark.parametrize(
    "text",
    [
        "@",
        "@" * 4000,
        "@@" + "@ " * 1999,
        "@🦀 @\u200bbob @ｂｏｂ @bób",  # noqa: RUF001 (the fullwidth letters are the point)
        "mail me@example.com",
        "x@room" * 600,  # each '@' follows a letter, as in an address
    ],
)
async def test_garbage_is_plain_text(room: Room, text: str) -> None:
    async with room.alice.session() as a:
        sent = await send(a, room.id, text)
    assert sent.text == text and said(sent) == ([], False)
    assert await mention_count(room.bob, room.id) == 0


async def test_a_message_counts_at_most_50_distinct_names(room: Room) -> None:
    bob = name(room.bob)
    fillers = " ".join(f"@nobody{i:03}" for i in range(MAX_MENTIONS))
    async with room.alice.session() as a:
        past_limit = await send(a, room.id, f"{fillers} @{bob} @room")
        repeated = await send(a, room.id, f"@{bob} " * 500)
    assert said(past_limit) == ([], False)
    assert said(repeated) == ([room.bob.user.id], False)
