"""Units of work (crab/core/storage/database.py) on SQLite (database threads)
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

from crab.core.domain.models import ChatKind
from crab.core.storage import chats, messages, users
from crab.core.storage.database import Database
from crab.core.storage.engine import create_engine
from crab.errors import Conflict
from tests.helpers.clock import settle

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only: its threads and its one writer."""
    made = Database(f"sqlite+aiosqlite:///{tmp_path / 'crab.db'}")
    await made.migrate()
    yield made
    await made.close()


def _alice_and_room(conn: Connection) -> tuple[int, int]:
    alice = users.insert(conn, "alice", "Alice", "hash", T0)
    room = chats.create(conn, ChatKind.ROOM, "room", alice.id, T0)
    chats.add_member(conn, room.id, alice.id, T0)
    return alice.id, room.id


async def _room(database: Database) -> tuple[int, int]:
    return await database.write(_alice_and_room)


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


async def test_a_write_commits_whole_or_not_at_all(database: Database) -> None:
    alice, room = await _room(database)
    assert await database.write(_store, room, alice, ["one", "two"]) == [1, 2]
    with pytest.raises(RuntimeError, match="half way"):
        await database.write(_store_then_fail, room, alice)
    # Nothing of the failed unit is left: not its message, not its id.
    assert await database.read(_texts, room) == ["one", "two"]
    assert await database.write(_store, room, alice, ["three"]) == [3]
    # What units wrote, SQLAlchemy's async engine reads, and the other way round.
    engine = create_engine(database.url)
    async with engine.connect() as conn:
        page = await conn.run_sync(messages.page, room, 0, 10)
    await engine.dispose()
    assert [m.text for m in page.messages] == ["three", "two", "one"]


async def test_both_paths_store_and_read_the_same(database: Database) -> None:
    """On SQLite a unit runs the hot statements on sqlite3's own cursor
    (storage/fast_statements.py) and SQLAlchemy's async engine through
    SQLAlchemy: the rows each writes look the same, and each reads the
    other's the same."""
    alice, room = await _room(database)
    await database.write(_store, room, alice, ["direct"])
    engine = create_engine(database.url)  # aiosqlite's adapter: SQLAlchemy's execution
    async with engine.begin() as conn:
        await conn.run_sync(_store, room, alice, ["through SQLAlchemy"])
    async with engine.connect() as conn:
        stamps = (await conn.execute(sa.text("SELECT created_at FROM messages"))).scalars().all()
        as_sqlalchemy = await conn.run_sync(messages.page, room, 0, 10)
    await engine.dispose()
    assert len(stamps) == 2 and len({type(s) for s in stamps}) == 1
    if database.dialect == "sqlite":
        assert len({len(s) for s in stamps}) == 1, stamps  # one text format
    as_unit = await database.read(messages.page, room, 0, 10)
    assert as_unit == as_sqlalchemy
    assert [m.sent_at for m in as_unit.messages] == [T0, T0]
    assert all(m.sent_at.tzinfo is not None for m in as_unit.messages)


async def test_sqlite_units_run_on_database_threads(sqlite: Database) -> None:
    """(PostgreSQL units run on the event loop's thread: asyncpg.)"""
    database = sqlite
    _, room = await _room(database)

    def where(conn: Connection) -> str:
        return threading.current_thread().name

    assert (await database.write(where)).startswith("crab-sqlite-write")
    assert (await database.read(where)).startswith("crab-sqlite-read")
    assert await database.read_now(where) == threading.current_thread().name
    assert await database.read(_texts, room) == []


async def test_small_reads_on_the_loop_see_every_commit(database: Database) -> None:
    alice, room = await _room(database)
    for n in range(1, 4):
        await database.write(_store, room, alice, [f"m{n}"])
        assert await database.read_now(_texts, room) == [f"m{i}" for i in range(1, n + 1)]


async def test_a_cancelled_write_finishes_and_keeps_the_writer_turn(sqlite: Database) -> None:
    database = sqlite
    alice, room = await _room(database)
    started, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> None:
        _store(conn, room, alice, ["slow"])
        started.set()
        release.wait(10)

    task = asyncio.create_task(database.write(slow))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    # The next write waits for the cancelled one, which still commits.
    following = asyncio.create_task(database.write(_store, room, alice, ["next"]))
    await settle()  # it runs up to the writer's turn and waits there
    assert not following.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await following == [2]
    assert await database.read(_texts, room) == ["slow", "next"]


def _store_twice(conn: Connection, chat_id: int, sender_id: int) -> None:
    row = messages.row(chat_id, 1, sender_id, "same", "twice", T0)
    messages.insert_many(conn, [row])
    messages.insert_many(conn, [dict(row, seq=2)])  # same (sender, client id)


async def test_a_conflict_is_sqlalchemys_integrity_error_on_both_paths(
    database: Database,
) -> None:
    """The worker retries a group one by one on a Conflict: sqlite3's own
    error (storage/fast_statements.py) must arrive as SQLAlchemy's
    IntegrityError, which the Database turns into a crab Conflict."""
    alice, room = await _room(database)
    with pytest.raises(Conflict) as raised:
        await database.write(_store_twice, room, alice)
    assert isinstance(raised.value.__cause__, IntegrityError)
    assert await database.read(_texts, room) == []  # rolled back whole
