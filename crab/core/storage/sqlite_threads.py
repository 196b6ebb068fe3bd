"""The database threads of an SQLite file (a Database owns one of these).

A unit of work (a sync function of a Connection doing a whole read or
write) runs here as one call on a thread, with a sync twin of the async
engine: one hand-over for the whole unit, instead of the several that
SQLAlchemy's aiosqlite adapter makes for every statement, each waiting
for a turn of a busy event loop (BENCHMARKS.md has the figures)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import SingletonThreadPool

from crab.core.storage import fast_statements
from crab.core.storage.engine import WRITE, listen_sqlite

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]

# Reads run side by side (WAL: readers never wait for the writer; SQLite
# lets go of the GIL while it steps). Writes are one at a time anyway, and
# always on the same thread and connection, so that its page and statement
# caches stay warm (writes spread over a pool measured slower).
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
        listen_sqlite(self.engine)
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="crab-sqlite-write")
        self.readers = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="crab-sqlite-read")
        # Off the loop: the first groups of sends find their statements ready.
        self.readers.submit(fast_statements.warm_up, self.engine.dialect)

    def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect() as conn:
            return work(conn, *args, **kwargs)

    def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE: True})
            with conn.begin():
                return work(conn, *args, **kwargs)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.readers.shutdown(wait=True)
        self.engine.dispose()
