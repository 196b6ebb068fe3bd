"""Read receipts, typing and presence through a real server and real
clients (docs/conversation.md): seen by the other members and by no one
else, coalesced, rate-limited, garbage dropped without a word."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import join_room
from tests.helpers.server import ClientFactory

ONLINE = pb.PresenceState.ONLINE
AWAY = pb.PresenceState.AWAY
OFFLINE = pb.PresenceState.OFFLINE


@dataclass
class Room:
    alice: CrabClient
    bob: CrabClient
    carol: CrabClient  # not in the room; in `side` with alice
    id: int
    side: int


@pytest.fixture
async def room(connect: ClientFactory) -> Room:
    alice, bob, carol = [await connect(n) for n in ("alice", "bob", "carol")]
    return Room(alice, bob, carol, await join_room(alice, bob), await join_room(alice, carol))


async def send(live: SessionStream, chat_id: int, text: str) -> pb.Message:
    cid = await live.send(chat_id, text)
    frame = await live.wait_for(lambda f: f.ack is not None and f.ack.client_message_id == cid)
    assert frame.ack is not None and frame.ack.message is not None
    return frame.ack.message


async def until(
    live: SessionStream, last: Callable[[pb.ServerFrame], bool]
) -> list[pb.ServerFrame]:
    """Every frame up to and including the first that matches `last`."""
    seen: list[pb.ServerFrame] = []

    def keep(frame: pb.ServerFrame) -> bool:
        seen.append(frame)
        return last(frame)

    await live.wait_for(keep)
    return seen


def message(text: str) -> Callable[[pb.ServerFrame], bool]:
    return lambda f: f.message is not None and f.message.text == text


def reads(frames: list[pb.ServerFrame]) -> list[tuple[int, int, int]]:
    return [(f.read.chat_id, f.read.user_id, f.read.last_read_id) for f in frames if f.read]


def presence_of(user_id: int, state: pb.PresenceState) -> Callable[[pb.ServerFrame], bool]:
    return lambda f: (
        f.presence is not None and f.presence.user_id == user_id and f.presence.state == state
    )


# ---- read receipts ------------------------------------------------------------


async def test_a_read_receipt_reaches_the_other_members_and_no_one_else(room: Room) -> None:
    alice, bob, carol = room.alice, room.bob, room.carol
    async with alice.session() as a, bob.session() as b, carol.session() as c:
        first = await send(a, room.id, "one")
        await b.wait_for(message("one"))
        await bob.mark_read(room.id, first.id)
        frame = await a.wait_for(lambda f: f.read is not None)
        assert reads([frame]) == [(room.id, bob.user.id, first.id)]
        # Carol shares another chat with alice, not this one: nothing of it.
        await send(a, room.side, "to carol")
        assert reads(await until(c, message("to carol"))) == []

    details = await alice.chat(room.id)
    positions = {p.user_id: p.last_read_id for p in details.read_positions}
    assert positions == {alice.user.id: first.id, bob.user.id: first.id}


async def test_read_receipts_are_coalesced_and_the_newest_wins(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a, bob.session() as b:
        sent = [await send(a, room.id, f"m{i}") for i in range(4)]
        await b.wait_for(message("m3"))
        for m in sent:
            await bob.mark_read(room.id, m.id)  # within a second: one now, the last later
        frames = await until(a, lambda f: f.read is not None and f.read.last_read_id == sent[3].id)
        assert [r[2] for r in reads(frames)] == [sent[0].id, sent[3].id]
        # Back, or not forward: no receipt (and the position stays).
        await bob.mark_read(room.id, sent[1].id)
        await send(b, room.id, "sentinel")
        assert reads(await until(a, message("sentinel"))) == []


async def test_marking_garbage_read_is_refused_or_changes_nothing(room: Room) -> None:
    alice, carol = room.alice, room.carol
    for chat_id in (0, -1, 2**62, 999_999):
        with pytest.raises(GRPCError) as raised:
            await alice.mark_read(chat_id, 1)
        assert raised.value.status == Status.NOT_FOUND
    with pytest.raises(GRPCError) as raised:
        await carol.mark_read(room.id, 1)  # not a member
    assert raised.value.status == Status.NOT_FOUND
    await alice.mark_read(room.id, 2**63 - 1)  # clamped to the end: nothing to read
    details = await alice.chat(room.id)
    assert {p.last_read_id for p in details.read_positions} == {0}


# ---- typing -------------------------------------------------------------------


async def test_typing_reaches_the_other_members_once_per_interval(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a, bob.session() as b:
        await b.typing(room.id)
        await b.typing(room.id)  # within the interval: dropped
        cid = await b.send(room.id, "typed")
        # Never to the typist's own stream (its ack comes after its own notice would).
        own = await until(b, lambda f: f.ack is not None and f.ack.client_message_id == cid)
        assert [f for f in own if f.typing] == []
        frames = await until(a, message("typed"))
        typing = [f.typing for f in frames if f.typing is not None]
        assert [(t.chat_id, t.user.id if t.user else 0) for t in typing] == [(room.id, bob.user.id)]
        assert typing[0].user is not None and typing[0].user.username == bob.user.username


async def test_typing_of_a_non_member_or_in_no_chat_is_dropped(room: Room) -> None:
    alice, carol = room.alice, room.carol
    async with alice.session() as a, carol.session() as c:
        for chat_id in (room.id, 0, -1, 2**62, 2**63 - 1, -(2**63), 999_999):
            await c.typing(chat_id)
        await send(c, room.side, "still here")  # the stream lives on
        frames = await until(a, message("still here"))
        assert [f for f in frames if f.typing] == []


# ---- presence -----------------------------------------------------------------


async def test_presence_goes_online_away_and_offline_with_last_seen(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a:
        async with bob.session() as b:
            await a.wait_for(presence_of(bob.user.id, ONLINE))
            details = await alice.chat(room.id)
            states = {p.user_id: p.state for p in details.presence}
            assert states == {alice.user.id: ONLINE, bob.user.id: ONLINE}
            await b.activity(away=True)
            await a.wait_for(presence_of(bob.user.id, AWAY))
            await b.activity(away=False)
            await a.wait_for(presence_of(bob.user.id, ONLINE))
        frame = await a.wait_for(presence_of(bob.user.id, OFFLINE))
        assert frame.presence is not None and frame.presence.last_seen_at is not None
        details = await alice.chat(room.id)
        (gone,) = [p for p in details.presence if p.user_id == bob.user.id]
        assert gone.state == OFFLINE and gone.last_seen_at == frame.presence.last_seen_at


async def test_a_user_with_two_sessions_is_away_only_when_both_are(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a, bob.session() as b1:
        await a.wait_for(presence_of(bob.user.id, ONLINE))
        async with bob.session() as b2:
            await b1.activity(away=True)
            await b2.activity(away=True)
            await a.wait_for(presence_of(bob.user.id, AWAY))
            await b2.activity(away=False)
            await a.wait_for(presence_of(bob.user.id, ONLINE))
        # b2 is gone, b1 is away: away, not offline.
        await a.wait_for(presence_of(bob.user.id, AWAY))
        details = await alice.chat(room.id)
        assert {p.user_id: p.state for p in details.presence}[bob.user.id] == AWAY


async def test_presence_goes_only_to_people_who_share_a_chat(
    room: Room, connect: ClientFactory
) -> None:
    dave = await connect("dave")  # shares a room with alice, nothing with bob
    alice, bob = room.alice, room.bob
    daves = await join_room(alice, dave, "daves")
    async with alice.session() as a, dave.session() as d:
        async with bob.session():
            await a.wait_for(presence_of(bob.user.id, ONLINE))
        await a.wait_for(presence_of(bob.user.id, OFFLINE))
        await send(a, daves, "sentinel")
        frames = await until(d, message("sentinel"))
        assert [
            f.presence for f in frames if f.presence and f.presence.user_id == bob.user.id
        ] == []


async def test_a_flood_of_activity_frames_changes_presence_once(room: Room) -> None:
    alice, bob = room.alice, room.bob
    async with alice.session() as a, bob.session() as b:
        await a.wait_for(presence_of(bob.user.id, ONLINE))
        for _ in range(200):
            await b.activity(away=True)  # repeats cost nothing
        await a.wait_for(presence_of(bob.user.id, AWAY))
        await send(b, room.id, "sentinel")
        frames = await until(a, message("sentinel"))
        assert [f for f in frames if f.presence and f.presence.user_id == bob.user.id] == []
