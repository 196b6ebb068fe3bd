"""Receipts, typing and presence never make a stream overflow nor wait in a
long queue: they join a short queue only, and go first when it is full."""

from __future__ import annotations

from datetime import UTC, datetime

from crab.core.broker.memory import MemoryBroker
from crab.core.domain import events as ev
from crab.core.domain.models import Caller, Message, User
from crab.core.services.live import Hub, LiveSession
from crab.core.services.resume import ResumeLimits
from crab.core.storage.database import Database

BOB = User(2, "bob", "Bob")
WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def message(n: int) -> ev.MessageCreated:
    return ev.MessageCreated(Message(7, n, BOB, "hi", WHEN, f"c{n}"))


def session(database: Database, buffer: int) -> LiveSession:
    hub = Hub(database, MemoryBroker(), buffer)
    live = LiveSession(hub, Caller(1, 1), buffer, ResumeLimits())
    live.chats.add(7)
    return live


async def test_ephemeral_news_joins_only_a_short_queue(database: Database) -> None:
    live = session(database, 8)  # room for news: a queue shorter than 2
    live.push_ephemeral(ev.Typing(7, BOB))
    live.push(message(1))
    live.push_ephemeral(ev.ReadMoved(7, 2, 1))  # queue of 2: dropped
    batch = await live.next_batch()
    assert batch is not None and [type(x) for x in batch] == [ev.Typing, Message]


async def test_a_full_queue_drops_news_before_it_ends_the_stream(database: Database) -> None:
    live = session(database, 8)
    live.push_ephemeral(ev.Typing(7, BOB))
    for n in range(1, 9):  # the 8th would overflow: the typing notice goes instead
        live.push(message(n))
    assert live.error is None
    batch = await live.next_batch()
    assert batch is not None and [x.id for x in batch if isinstance(x, Message)] == list(
        range(1, 9)
    )
    assert not any(isinstance(x, ev.Typing) for x in batch)


async def test_news_of_other_chats_and_my_own_are_not_queued(database: Database) -> None:
    live = session(database, 64)
    live.push_ephemeral(ev.Typing(7, User(1, "alice", "Alice")))  # me
    live.push_ephemeral(ev.Typing(8, BOB))  # not a chat of this stream
    live.push_ephemeral(ev.ReadMoved(8, 2, 1))
    live.push_ephemeral(ev.ReadMoved(7, 1, 1))  # my own receipt
    live.push(message(1))
    batch = await live.next_batch()
    assert batch is not None and [type(x) for x in batch] == [Message]
