"""SQLite commits with fsync (synchronous=FULL) on every connection crab
opens: the async engine's and its sync twin's (storage/sqlite_threads.py), so an
acknowledged write survives an OS crash or a power cut, not only a kill -9."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.storage.database import Database
from crab.core.storage.engine import create_engine

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def synchronous(conn: Connection) -> int:
    value = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert isinstance(value, int)
    return value


async def test_every_sqlite_connection_commits_with_fsync(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'crab.db'}")
    engine = create_engine(database.url)  # the async engine (migrations use it)
    try:
        await database.migrate()
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA synchronous")) == FULL
            assert await conn.scalar(sa.text("PRAGMA journal_mode")) == "wal"
        assert await database.read(synchronous) == FULL  # the twin's readers
        assert await database.read_now(synchronous) == FULL  # the loop's own thread
        assert await database.write(synchronous) == FULL  # the twin's writer
    finally:
        await engine.dispose()
        await database.close()
