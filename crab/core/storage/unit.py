"""Units of work: a function of a plain (sync) SQLAlchemy connection that
does a whole read or write, run as ONE call to the database.

On SQLite the function runs on a database thread with a sync twin of the
engine: one hand-over to the thread for the whole unit, instead of the
four or so that SQLAlchemy's aiosqlite adapter makes for every statement
(each waiting for a turn of a busy event loop). A worker's group of sends
took ~8 ms of wall time that way under load, and ~1 ms as one unit
(BENCHMARKS.md). On PostgreSQL the same function runs through
`AsyncConnection.run_sync` (asyncpg is asynchronous: no thread needed).

Writes keep the rules of `engine.transaction()`: this process's one SQLite
writer at a time, BEGIN IMMEDIATE, committed at the end, rolled back if the
function raises."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import SingletonThreadPool

from crab.core.storage import direct
from crab.core.storage import engine as engines

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]

# Reads run side by side (WAL: readers never wait for the writer; SQLite
# lets go of the GIL while it steps). Writes are one at a time anyway, and
# always on the same thread and connection: its page and statement caches
# stay warm (writes spread over four connections: 100 x 10 fan-out ~490 ->
# ~360 sends/s).
SQLITE_READERS = 2


class SqliteThreads:
    """The sync twin of an aiosqlite engine, and the threads it runs on."""

    def __init__(self, url: sa.URL) -> None:
        self.engine: Engine = sa.create_engine(
            url.set(drivername="sqlite+pysqlite"),
            poolclass=SingletonThreadPool,  # each thread keeps its own connection
            pool_size=SQLITE_READERS + 2,  # + the writer and the loop's thread
            pool_reset_on_return=None,  # as the async engine: reads open no transaction
        )
        engines.listen_sqlite(self.engine)
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="crab-sqlite-write")
        self.readers = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="crab-sqlite-read")
        # Off the loop: the first groups of sends find their statements ready.
        self.readers.submit(direct.warm_up, self.engine.dialect)

    def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect() as conn:
            return work(conn, *args, **kwargs)

    def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{engines.WRITE: True})
            with conn.begin():
                return work(conn, *args, **kwargs)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.readers.shutdown(wait=True)
        self.engine.dispose()


_threads: weakref.WeakKeyDictionary[AsyncEngine, SqliteThreads] = weakref.WeakKeyDictionary()


def attach(engine: AsyncEngine) -> None:
    """Gives an SQLite file engine its threads (engine.create_engine does)."""
    database = engine.url.database or ""
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        _threads[engine] = SqliteThreads(engine.url)


def detach(engine: AsyncEngine) -> None:
    threads = _threads.pop(engine, None)
    if threads is not None:
        threads.close()


async def read(engine: AsyncEngine, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    threads = _threads.get(engine)
    if threads is None:
        async with engine.connect() as conn:
            return await conn.run_sync(work, *args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(threads.readers, lambda: threads.read(work, *args, **kwargs))


async def read_now(engine: AsyncEngine, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A read small enough to run on the event loop's own thread (SQLite):
    a lookup by primary key costs less than handing it to a database thread
    and back (~0.1 ms against ~0.3 ms). Reads never wait for SQLite's writer
    (WAL). Elsewhere the same as `read`."""
    threads = _threads.get(engine)
    if threads is None:
        return await read(engine, work, *args, **kwargs)
    return threads.read(work, *args, **kwargs)


async def write(engine: AsyncEngine, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    threads = _threads.get(engine)
    if threads is None:
        async with engines.transaction(engine) as conn:
            return await conn.run_sync(work, *args, **kwargs)
    loop = asyncio.get_running_loop()
    async with engines.sqlite_writer(engine):
        done = loop.run_in_executor(threads.writer, lambda: threads.write(work, *args, **kwargs))
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The thread finishes the unit regardless; this process's writer
            # lock is held until it has (so no other writer waits on SQLite's).
            await asyncio.wait({done})
            raise
