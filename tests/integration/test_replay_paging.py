"""A replay costs what the client reads: each batch the stream's writer
takes holds at most one page read from the database (BACKFILL_PAGE); the
next page is read only when the writer asks again, which it does once it has
sent the previous batch (HTTP/2 flow control: once the client has read it).
A client that stops reading so stops the reads, and nothing piles up."""

from __future__ import annotations

from pathlib import Path

import pytest

from crab.config import Limits, Settings
from crab.core.app import Crab
from crab.core.domain.models import Caller, Message
from crab.core.services import live
from crab.core.services.live import BACKFILL_PAGE, Ready
from crab.proto.crab import v1 as pb
from tests.helpers.server import ClientFactory, make_settings

STORED = 2 * BACKFILL_PAGE + 200


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Overrides conftest's: sends as fast as the test can store them."""
    return make_settings(tmp_path, limits=Limits(send_rate=100_000, send_burst=100_000))


@pytest.fixture
def reads(crab: Crab, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every page the hub reads for a replay: (chat, after)."""
    made: list[tuple[int, int]] = []
    read = crab.hub.messages_after

    async def counted(chat_id: int, after: int) -> list[Message]:
        made.append((chat_id, after))
        return await read(chat_id, after)

    monkeypatch.setattr(crab.hub, "messages_after", counted)
    return made


@pytest.mark.slow  # seconds
async def test_a_replay_is_read_one_page_per_batch(
    crab: Crab, connect: ClientFactory, reads: list[tuple[int, int]]
) -> None:
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    async with alice.session() as mine:
        for first in range(0, STORED, 100):  # well inside the stream's buffers
            for i in range(first, first + 100):
                await mine.send(room.id, f"m{i}", client_message_id=f"c{i}")
            await mine.collect(lambda f: f.ack is not None, 100)

    reads.clear()
    session = await crab.hub.connect(Caller(alice.user.id, 0), [(room.id, 0, 0)])
    try:
        batches: list[list[live.Outgoing]] = []
        while not batches or not isinstance(batches[-1][-1], Ready):
            batch = await session.next_batch()
            assert batch is not None
            batches.append(batch)
            assert len(reads) == len(batches)  # one page read per batch taken, no more
        ids = [m.id for batch in batches for m in batch if isinstance(m, Message)]
        assert ids == list(range(1, STORED + 1))
        assert [len(batch) for batch in batches] == [BACKFILL_PAGE, BACKFILL_PAGE, 201]
        assert reads == [(room.id, 0), (room.id, BACKFILL_PAGE), (room.id, 2 * BACKFILL_PAGE)]
    finally:
        await crab.hub.disconnect(session)
