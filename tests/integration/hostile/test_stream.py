"""Abuse of the session stream against a real `crab serve`: Resume floods
(once 620 frames of 6 bytes made the server send 271,000 messages) and
Resumes with a huge number of cursors (500,000 froze the server for 3 s).
The attacker is a signed-up user in a room of its own with stored messages;
the bystander must keep working during and after each attack."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from crab.client.connection import CONNECT, CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import Bystander, new_user
from tests.helpers.process import CrabProcess

pytestmark = pytest.mark.slow  # a real crab serve process

STORED = 300  # messages in the attacker's room
FLOOD = 620  # Resume frames, as in the measured attack
CAP = 1000  # --resume-cursors-max default


async def attacker_with_room(server: CrabProcess) -> tuple[CrabClient, int]:
    """A user and a room of its own holding STORED messages (ids 1..STORED)."""
    client = await new_user(server)
    room = await client.chats.create_room(
        pb.CreateRoomRequest(name="mine"), metadata=client.metadata
    )
    async with client.session() as live:
        for i in range(STORED):
            await live.send(room.id, f"m{i}", client_message_id=f"c{i}")
        await live.collect(lambda f: f.ack is not None, STORED, timeout=60)
    return client, room.id


def resume(cursors: list[tuple[int, int]]) -> pb.ClientFrame:
    chats = [pb.ChatCursor(chat_id=c, last_seen_id=s) for c, s in cursors]
    return pb.ClientFrame(resume=pb.Resume(cursors=chats))


async def read_to_end(live: SessionStream) -> tuple[list[int], GRPCError | None]:
    """Every message id the stream delivers until the server ends it, and
    the status it ended with (None: ended with OK)."""
    ids: list[int] = []
    try:
        while (frame := await live.recv()) is not None:
            if frame.message is not None:
                ids.append(frame.message.id)
    except GRPCError as error:
        return ids, error
    return ids, None


async def flood(live: SessionStream, frame: pb.ClientFrame, count: int) -> int:
    """Sends `frame` up to `count` times; stops when the server has ended
    the stream. Returns how many went out."""
    assert live.stream is not None
    sent = 0
    with contextlib.suppress(StreamTerminatedError, ConnectionError, GRPCError):
        for _ in range(count):
            await live.stream.send_message(frame)
            sent += 1
    return sent


async def test_a_resume_flood_ends_the_stream_and_replays_nothing_twice(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    attacker, room = await attacker_with_room(hostile_server)
    async with attacker.session({room: 0}) as live:
        replayed = [f.message.id for f in live.backlog if f.message is not None]
        assert replayed == list(range(1, STORED + 1))  # the first frame's replay, once

        attack = asyncio.ensure_future(flood(live, resume([(room, 0)]), FLOOD))
        await bystander.check()  # during the flood
        ids, error = await read_to_end(live)
        await attack
    assert error is not None and error.status == Status.RESOURCE_EXHAUSTED, error
    assert "Resume" in (error.message or "")
    assert ids == []  # not one message sent again (it was 271,000)
    await bystander.check()
    attacker.close()


async def test_a_resume_within_the_limit_moves_forward_only(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    attacker, room = await attacker_with_room(hostile_server)
    async with attacker.session({room: STORED - 10}) as live:
        replayed = [f.message.id for f in live.backlog if f.message is not None]
        assert replayed == list(range(STORED - 9, STORED + 1))
        for cursor in (0, 5, STORED - 20):  # back below what was sent: ignored
            await live.resume({room: cursor})
        await live.send(room, "marker")
        seen: list[int] = []
        while True:
            frame = await live.wait_for(lambda f: f.message is not None or f.ack is not None)
            if frame.message is not None:
                seen.append(frame.message.id)
                if frame.message.text == "marker":
                    break
        assert seen == [STORED + 1]  # only the new message: the stream lives on
    await bystander.check()
    attacker.close()


async def test_duplicate_and_foreign_cursors_cost_one_replay(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    attacker, room = await attacker_with_room(hostile_server)
    # As many cursors as allowed: its room again and again, the bystander's
    # room and chats that do not exist: one replay of its own room, no more.
    cursors = [(room, 0)] * (CAP // 2) + [(bystander.room, 0)]
    cursors += [(10_000 + n, 0) for n in range(CAP - len(cursors))]
    async with attacker.channel.request(
        CONNECT,
        Cardinality.STREAM_STREAM,
        pb.ClientFrame,
        pb.ServerFrame,
        metadata=attacker.metadata,
    ) as stream:
        await stream.send_message(resume(cursors))
        replayed: list[int] = []
        while True:
            frame = await stream.recv_message()
            assert frame is not None
            frames = frame.batch.frames if frame.batch is not None else [frame]
            replayed += [f.message.id for f in frames if f.message is not None]
            if any(f.ready is not None for f in frames):
                break
        await stream.cancel()
    assert replayed == list(range(1, STORED + 1))
    await bystander.check()
    attacker.close()


@pytest.mark.parametrize("cursors", [CAP + 1, 5000])
async def test_a_resume_with_too_many_cursors_is_refused_at_open(
    hostile_server: CrabProcess, bystander: Bystander, cursors: int
) -> None:
    attacker, room = await attacker_with_room(hostile_server)
    with pytest.raises(GRPCError) as refused:
        async with attacker.session({room + n: 0 for n in range(cursors)}):
            pass
    assert refused.value.status == Status.INVALID_ARGUMENT
    assert "at most 1000 cursors" in (refused.value.message or "")
    await bystander.check()
    # The attacker itself is fine afterwards: a sane Resume replays its room.
    async with attacker.session({room: STORED - 1}) as live:
        assert [f.message.id for f in live.backlog if f.message] == [STORED]
    attacker.close()


async def test_a_resume_with_too_many_cursors_ends_an_open_stream(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    attacker, room = await attacker_with_room(hostile_server)
    async with attacker.session({room: STORED}) as live:
        assert live.stream is not None
        await live.stream.send_message(resume([(room, 0)] * 10_000))
        ids, error = await read_to_end(live)
    assert error is not None and error.status == Status.INVALID_ARGUMENT, error
    assert ids == []
    await bystander.check()
    attacker.close()
