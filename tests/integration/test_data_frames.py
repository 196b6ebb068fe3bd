"""Session frames written as DATA frames by crab itself (api/fast_writes.py)
reach a real grpclib client whole and in order, and whatever cannot go out
that way (a frame bigger than HTTP/2's frame size, the stream's first
frame before its headers) goes through grpclib. The slow-client tests
cover the flow-control windows; tests/integration/test_process.py reads the
same frames with grpcio."""

from __future__ import annotations

import asyncio

from crab.core.api import fast_writes
from crab.proto.crab import v1 as pb
from tests.helpers.chats import create_room, is_message, join
from tests.helpers.server import ClientFactory

LONG = "y" * 3_900  # a batch of several is bigger than a 16 KiB DATA frame


async def test_frames_written_directly_arrive_whole_and_in_order(connect: ClientFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "frames")
    await join(alice, bob, room)
    before = fast_writes.written.copy()
    async with alice.session() as a_live, bob.session() as b_live:
        texts = [f"short {i}" for i in range(40)] + [f"{i} {LONG}" for i in range(12)]
        # All at once: bob's stream gets batches, some over 16 KiB.
        await asyncio.gather(*(a_live.send(room.id, text) for text in texts))
        got = await b_live.collect(is_message, len(texts))
        assert [f.message.text for f in got] == texts
        assert [f.message.id for f in got] == list(range(1, len(texts) + 1))
        acked = await a_live.collect(lambda f: f.ack is not None, len(texts))
        assert {f.ack.message.text for f in acked} == set(texts)
    fast = fast_writes.written["fast"] - before["fast"]
    through_grpclib = fast_writes.written["grpclib"] - before["grpclib"]
    assert fast > 0, "no frame took the fast path"
    assert through_grpclib > 0, "the large batches and first frames go through grpclib"


async def test_a_stream_that_is_still_open_keeps_working_after_many_frames(
    connect: ClientFactory,
) -> None:
    """h2 keeps counting the windows these frames used: a long run of them
    (more than the 64 KiB initial connection window grpclib starts from)
    never stalls the stream."""
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "windows")
    await join(alice, bob, room)
    async with alice.session() as a_live, bob.session() as b_live:
        for round_ in range(30):
            texts = [f"r{round_} m{i} {LONG[:1500]}" for i in range(5)]
            await asyncio.gather(*(a_live.send(room.id, text) for text in texts))
            got = await b_live.collect(is_message, len(texts))
            assert [f.message.text for f in got] == texts
        detail = await bob.chats.get_chat(pb.ChatRequest(chat_id=room.id), metadata=bob.metadata)
        assert detail.chat.last_message_id == 150
