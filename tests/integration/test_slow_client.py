"""A client that stops reading only hurts itself: the others get everything,
its own stream ends with RESOURCE_EXHAUSTED, and a resume fills the gap.
Also: a graceful shutdown ends open session streams with UNAVAILABLE."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, SessionStream
from crab.config import Limits, Settings
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.server import ClientFactory, make_settings

STREAM_BUFFER = 64
# grpclib's client opens a 4 MiB HTTP/2 window (stream and connection), so a
# client that never reads may absorb up to ~4 MiB before the server's writer
# blocks and its 64-frame buffer fills. 2,000 frames of ~3 KB (6 MB) overflow
# it with a wide margin (a few hundred bytes each would not).
TOTAL = 2_000
PADDING = "x" * 3_000
# Sends in flight at once: keeps the sender's own stream (an ack and an echo
# per message) and the healthy reader well inside their 64-frame buffers.
WINDOW = 16
FRAME_TIMEOUT = 10.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Overrides conftest's: conftest's `crab` and `connect` build on it."""
    return make_settings(
        tmp_path,
        limits=Limits(stream_buffer=STREAM_BUFFER, send_rate=100_000, send_burst=100_000),
    )


def is_message(frame: pb.ServerFrame) -> bool:
    return frame.message is not None


def text(i: int) -> str:
    return f"message {i:05d} {PADDING}"


async def room_of_three(connect: ClientFactory) -> tuple[CrabClient, CrabClient, CrabClient, int]:
    alice = await connect("sender")
    bob = await connect("healthy")
    carol = await connect("stalled")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="busy"), metadata=alice.metadata)
    for member in (bob, carol):
        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=member.user.id), metadata=alice.metadata
        )
        await member.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=member.metadata
        )
    return alice, bob, carol, room.id


async def send_all(live: SessionStream, chat_id: int, texts: list[str]) -> dict[int, str]:
    """Sends every text, WINDOW at a time; returns message id -> text from the acks."""
    stored: dict[int, str] = {}
    for start in range(0, len(texts), WINDOW):
        chunk = texts[start : start + WINDOW]
        by_cid = {await live.send(chat_id, t): t for t in chunk}
        for frame in await live.collect(lambda f: f.ack is not None, len(chunk), FRAME_TIMEOUT):
            stored[frame.ack.message.id] = by_cid.pop(frame.ack.client_message_id)
    return stored


async def read_messages(live: SessionStream, count: int) -> list[pb.Message]:
    frames = await live.collect(is_message, count, FRAME_TIMEOUT)
    return [f.message for f in frames]


@pytest.mark.slow  # seconds
async def test_stalled_client_never_slows_others_and_resumes_without_gaps(
    crab: Crab, connect: ClientFactory
) -> None:
    alice, bob, carol, chat_id = await room_of_three(connect)
    texts = [text(i) for i in range(1, TOTAL + 1)]

    async with alice.session() as sender, bob.session() as healthy:
        async with carol.session() as stalled:
            # From here on, carol reads nothing until every message is through.
            stored, got = await asyncio.gather(
                send_all(sender, chat_id, texts), read_messages(healthy, TOTAL)
            )

            # Every text stored once, as ids 1..TOTAL (sends in flight together
            # may be stored in either order: the acks say which id each got).
            assert sorted(stored) == list(range(1, TOTAL + 1))
            assert sorted(stored.values()) == texts
            expected = [stored[i] for i in range(1, TOTAL + 1)]
            # The healthy member got all of them, in order, no gap, no duplicate.
            assert [m.id for m in got] == list(range(1, TOTAL + 1))
            assert [m.text for m in got] == expected
            assert all(m.chat_id == chat_id and m.sender.id == alice.user.id for m in got)

            # Carol's buffer overflowed long ago, and the server ended her
            # stream then, without waiting for her. Reading at last: whatever
            # frames survived (grpclib drops those still buffered when the
            # server resets the stream after its status), then the status.
            seen: list[pb.Message] = []
            with pytest.raises(GRPCError) as ended:
                while (frame := await asyncio.wait_for(stalled.recv(), FRAME_TIMEOUT)) is not None:
                    assert frame.message is not None, frame
                    seen.append(frame.message)
            assert ended.value.status == Status.RESOURCE_EXHAUSTED
            assert "resume" in (ended.value.message or "")
            assert [m.id for m in seen] == list(range(1, len(seen) + 1))
            assert [m.text for m in seen] == expected[: len(seen)]
            last_seen = seen[-1].id if seen else 0
            assert last_seen < TOTAL

        # Reconnect with the cursor (after leaving the failed stream: until
        # grpclib releases it, its unread frames hold the connection's HTTP/2
        # window): every missed message once, in order...
        async with carol.session({chat_id: last_seen}) as resumed:
            replayed = [f.message for f in resumed.backlog if f.message is not None]
            assert len(replayed) == len(resumed.backlog)
            assert [m.id for m in replayed] == list(range(last_seen + 1, TOTAL + 1))
            assert [m.text for m in replayed] == expected[last_seen:]

            # ...then live traffic, continuing the same sequence.
            live_texts = [f"live {i}" for i in range(3)]
            for t in live_texts:
                await sender.send(chat_id, t)
                await sender.wait_for(lambda f: f.ack is not None, FRAME_TIMEOUT)
            live = await read_messages(resumed, len(live_texts))
            assert [m.id for m in live] == [TOTAL + 1, TOTAL + 2, TOTAL + 3]
            assert [m.text for m in live] == live_texts

            # The healthy member never noticed any of it.
            after = await read_messages(healthy, len(live_texts))
            assert [m.id for m in after] == [TOTAL + 1, TOTAL + 2, TOTAL + 3]


async def test_graceful_shutdown_ends_session_streams_with_unavailable(
    crab: Crab, connect: ClientFactory
) -> None:
    alice = await connect("alice")
    async with alice.session() as live:
        closing = asyncio.create_task(crab.close())
        with pytest.raises(GRPCError) as ended:
            await live.wait_for(lambda f: False, FRAME_TIMEOUT)
        await asyncio.wait_for(closing, FRAME_TIMEOUT)
    assert ended.value.status == Status.UNAVAILABLE
    assert "resume" in (ended.value.message or "")
