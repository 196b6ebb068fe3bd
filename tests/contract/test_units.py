"""Units of work (crab/core/storage/unit.py) on SQLite (database threads)
and on a real PostgreSQL (run_sync): a write commits as a whole or not at
all; on SQLite a cancelled write still keeps this process's writer turn
until its thread is done."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from crab.core.domain.models import ChatKind
from crab.core.storage import chats, messages, unit, users
from crab.core.storage.engine import create_engine, dispose, migrate, transaction
from tests.helpers.clock import settle

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """SQLite only: its threads and its one writer."""
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'crab.db'}")
    await migrate(made)
    yield made
    await dispose(made)


async def _room(engine: AsyncEngine) -> tuple[int, int]:
    async with transaction(engine) as conn:
        alice = await users.insert(conn, "alice", "Alice", "hash", T0)
        room = await chats.create(conn, ChatKind.ROOM, "room", alice.id, T0)
        await chats.add_member(conn, room.id, alice.id, T0)
    return alice.id, room.id


def _store(conn: Connection, chat_id: int, sender_id: int, texts: list[str]) -> list[int]:
    first = messages.next_seqs(conn, chat_id, len(texts))
    seqs = list(range(first, first + len(texts)))
    rows = [
        messages.row(chat_id, s, sender_id, f"c{s}", t, T0)
        for s, t in zip(seqs, texts, strict=True)
    ]
    messages.insert_many(conn, rows)
    return seqs


def _store_then_fail(conn: Connection, chat_id: int, sender_id: int) -> None:
    _store(conn, chat_id, sender_id, ["lost"])
    raise RuntimeError("the unit failed half way")


def _texts(conn: Connection, chat_id: int) -> list[str]:
    return [m.text for m in reversed(messages.page(conn, chat_id, 0, 100).messages)]


async def test_a_write_commits_whole_or_not_at_all(engine: AsyncEngine) -> None:
    alice, room = await _room(engine)
    assert await unit.write(engine, _store, room, alice, ["one", "two"]) == [1, 2]
    with pytest.raises(RuntimeError, match="half way"):
        await unit.write(engine, _store_then_fail, room, alice)
    # Nothing of the failed unit is left: not its message, not its id.
    assert await unit.read(engine, _texts, room) == ["one", "two"]
    assert await unit.write(engine, _store, room, alice, ["three"]) == [3]
    # What units wrote, the async side reads, and the other way round.
    async with engine.connect() as conn:
        page = await conn.run_sync(messages.page, room, 0, 10)
    assert [m.text for m in page.messages] == ["three", "two", "one"]


async def test_both_paths_store_and_read_the_same(engine: AsyncEngine) -> None:
    """On SQLite a unit runs the hot statements on sqlite3's own cursor
    (storage/direct.py) and the async side through SQLAlchemy: the rows
    each writes look the same, and each reads the other's the same."""
    alice, room = await _room(engine)
    await unit.write(engine, _store, room, alice, ["direct"])
    async with transaction(engine) as conn:
        await conn.run_sync(_store, room, alice, ["through SQLAlchemy"])
    async with engine.connect() as conn:
        stamps = (await conn.execute(sa.text("SELECT created_at FROM messages"))).scalars().all()
        as_sqlalchemy = await conn.run_sync(messages.page, room, 0, 10)
    assert len(stamps) == 2 and len({type(s) for s in stamps}) == 1
    if engine.dialect.name == "sqlite":
        assert len({len(s) for s in stamps}) == 1, stamps  # one text format
    as_unit = await unit.read(engine, messages.page, room, 0, 10)
    assert as_unit == as_sqlalchemy
    assert [m.sent_at for m in as_unit.messages] == [T0, T0]
    assert all(m.sent_at.tzinfo is not None for m in as_unit.messages)


async def test_sqlite_units_run_on_database_threads(sqlite: AsyncEngine) -> None:
    """(PostgreSQL units run on the event loop's thread: asyncpg.)"""
    engine = sqlite
    _, room = await _room(engine)

    def where(conn: Connection) -> str:
        return threading.current_thread().name

    assert (await unit.write(engine, where)).startswith("crab-sqlite-write")
    assert (await unit.read(engine, where)).startswith("crab-sqlite-read")
    assert await unit.read_now(engine, where) == threading.current_thread().name
    assert await unit.read(engine, _texts, room) == []


async def test_small_reads_on_the_loop_see_every_commit(engine: AsyncEngine) -> None:
    alice, room = await _room(engine)
    for n in range(1, 4):
        await unit.write(engine, _store, room, alice, [f"m{n}"])
        assert await unit.read_now(engine, _texts, room) == [f"m{i}" for i in range(1, n + 1)]


async def test_a_cancelled_write_finishes_and_keeps_the_writer_turn(sqlite: AsyncEngine) -> None:
    engine = sqlite
    alice, room = await _room(engine)
    started, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> None:
        _store(conn, room, alice, ["slow"])
        started.set()
        release.wait(10)

    task = asyncio.create_task(unit.write(engine, slow))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    # The next write waits for the cancelled one, which still commits.
    following = asyncio.create_task(unit.write(engine, _store, room, alice, ["next"]))
    await settle()  # it runs up to the writer's turn and waits there
    assert not following.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await following == [2]
    assert await unit.read(engine, _texts, room) == ["slow", "next"]


def _store_twice(conn: Connection, chat_id: int, sender_id: int) -> None:
    row = messages.row(chat_id, 1, sender_id, "same", "twice", T0)
    messages.insert_many(conn, [row])
    messages.insert_many(conn, [dict(row, seq=2)])  # same (sender, client id)


async def test_a_conflict_is_sqlalchemys_integrity_error_on_both_paths(
    engine: AsyncEngine,
) -> None:
    """The worker retries a group one by one on IntegrityError: sqlite3's
    own error (storage/direct.py) must arrive as SQLAlchemy's."""
    alice, room = await _room(engine)
    with pytest.raises(IntegrityError):
        await unit.write(engine, _store_twice, room, alice)
    assert await unit.read(engine, _texts, room) == []  # rolled back whole
