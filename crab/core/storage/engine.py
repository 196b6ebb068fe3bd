"""The database engine, chosen by URL (SQLite by default, PostgreSQL when
scaled), with the migrations applied. Writes go through `transaction()`,
reads through `engine.connect()`: on SQLite only `transaction()` opens a
transaction (BEGIN IMMEDIATE); a plain `engine.begin()` runs each statement
on its own."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from crab.core.storage.files import private_sqlite_files

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration (a test keeps it equal to alembic's head). A database
# already there skips importing alembic, which costs ~0.2 s of start-up.
SCHEMA_HEAD = "0002"
# PostgreSQL advisory lock key ("crab"): processes starting at once on a new
# database (scaled out) migrate one at a time; the later ones find it done.
MIGRATION_LOCK = 0x63726162


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit returns once the WAL is fsynced, so an acknowledged
    # message survives an OS crash or a power cut (NORMAL: a kill -9 only).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    # The driver's own BEGIN comes only at the first write; we say it
    # ourselves (below), and only for writes.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # A write transaction takes SQLite's write lock at BEGIN. Begun as a
    # reader, it would fail at its first write after another process's
    # commit ("database is locked", busy_timeout or not). Reads need no
    # BEGIN: each statement sees a consistent snapshot, as before.
    if conn.get_execution_options().get(WRITE, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def listen_sqlite(engine: Engine) -> None:
    """This module's SQLite rules on a sync engine (the async engine's own,
    or its twin in unit.py)."""
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)


WRITE = "crab_write"  # execution option of a connection that will write
# SQLite has one writer. Writers of this process queue here, handed over
# at once, instead of polling SQLite's lock (busy_timeout sleeps up to 100 ms).
_sqlite_writers: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        # No rollback when a connection goes back to the pool: only writes
        # open transactions, and they always end in commit or rollback.
        engine = create_async_engine(url, pool_reset_on_return=None)
        listen_sqlite(engine.sync_engine)
        _sqlite_writers[engine] = asyncio.Lock()
        from crab.core.storage import unit  # it builds on this module

        unit.attach(engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


async def dispose(engine: AsyncEngine) -> None:
    """Closes the engine's connections (and its SQLite threads)."""
    from crab.core.storage import unit

    await asyncio.to_thread(unit.detach, engine)  # waits for a unit in hand
    await engine.dispose()


@asynccontextmanager
async def sqlite_writer(engine: AsyncEngine) -> AsyncIterator[None]:
    """This process's turn to write to an SQLite database (no-op elsewhere)."""
    lock = _sqlite_writers.get(engine)
    if lock is None:
        yield
        return
    async with lock:
        yield


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction: committed when the block ends, rolled back if it
    raises. Every write goes through here (reads use engine.connect())."""
    async with sqlite_writer(engine), engine.connect() as conn:
        if engine in _sqlite_writers:
            await conn.execution_options(**{WRITE: True})
        async with conn.begin():
            yield conn


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Brings the schema to the newest revision (safe to run every start)."""

    try:
        async with engine.connect() as conn:
            version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        if version == SCHEMA_HEAD:
            return
    except DBAPIError:
        pass  # a new database: no version table yet

    def upgrade(connection: Connection) -> None:
        from alembic import command

        command.upgrade(_alembic_config(connection), "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held to commit: alembic runs inside this transaction (DDL included).
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        await conn.run_sync(upgrade)


def ensure_sqlite_dir(url: str) -> None:
    """An SQLite database file (and its folder) made or kept private before
    SQLite opens it (storage/files.py)."""
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            private_sqlite_files(Path(path))


__all__ = ["create_engine", "dispose", "ensure_sqlite_dir", "migrate", "transaction"]
