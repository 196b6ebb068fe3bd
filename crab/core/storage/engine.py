"""SQLAlchemy engines by URL (SQLite by default, PostgreSQL when scaled)
and SQLite's connection rules. Only `database.Database` builds engines:
everything else reaches the database through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crab.core.storage.files import private_sqlite_files

WRITE = "crab_write"  # execution option of a connection that will write


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit returns once the WAL is fsynced, so an acknowledged
    # message survives an OS crash or a power cut (NORMAL: a kill -9 only).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # A deleted message's text is overwritten with zeros in the file, not
    # left in freed space (the WAL's old frames go at its next checkpoint).
    cursor.execute("PRAGMA secure_delete=ON")
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
    or its twin on the database threads)."""
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        # No rollback when a connection goes back to the pool: only writes
        # open transactions, and they always end in commit or rollback.
        engine = create_async_engine(url, pool_reset_on_return=None)
        listen_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def ensure_sqlite_dir(url: str) -> None:
    """An SQLite database file (and its folder) made or kept private before
    SQLite opens it (storage/files.py)."""
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            private_sqlite_files(Path(path))


__all__ = ["WRITE", "create_engine", "ensure_sqlite_dir", "listen_sqlite"]
