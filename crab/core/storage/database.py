"""The one way to the database: a `Database`, built once by the composition
root (crab/core/app.py) from a URL, with three verbs. Each takes a unit of
work, a sync function of a SQLAlchemy `Connection` doing a whole read or
write (the storage modules' queries are such functions, and so are the
rules that combine them):

    await database.read(work, *args)      a read, off the event loop
    await database.read_now(work, *args)  a small read, on the loop's thread
    await database.write(work, *args)     a transaction: committed at the
                                          end, rolled back if `work` raises

On an SQLite file a unit runs as one call on a database thread
(sqlite_threads.py); on PostgreSQL through `AsyncConnection.run_sync`
(asyncpg needs no thread). A unique key that a competing writer stored
first arrives as `crab.errors.Conflict`, whichever path ran.

SQLite has one writer. Writes of this process queue on the Database's
lock (handed over at once, instead of polling SQLite's lock: its busy
timeout sleeps between tries) and begin with BEGIN IMMEDIATE (a deferred
transaction that read first fails with "database is locked" once another
process has committed, whatever the busy timeout). Reads issue no BEGIN.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from crab.core import metrics
from crab.core.storage.engine import WRITE, create_engine
from crab.core.storage.failures import failure_label
from crab.core.storage.sqlite_threads import SqliteThreads, Work
from crab.errors import Conflict, CrabError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from alembic.config import Config

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("crab")

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration (a test keeps it equal to alembic's head). A database
# already there skips importing alembic, which is slow to import.
SCHEMA_HEAD = "0008"
# PostgreSQL advisory lock key ("crab"): processes starting at once on a new
# database (scaled out) migrate one at a time; the later ones find it done.
MIGRATION_LOCK = 0x63726162
CONFLICT = "a competing write stored the same key first; try again"


class UnknownSchema(Exception):
    """The database's schema is none this crab's migrations made: a newer
    crab's (a downgrade, refused: its migrations cannot be run backwards
    by code that does not know them) or not crab's at all."""


def known_revisions() -> list[str]:
    """This crab's schema revisions, oldest first (from the migrations'
    file names, "0001_initial_schema.py": no alembic import)."""
    found = (p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    return sorted(found)


def check_known(version: str) -> None:
    """UnknownSchema unless this crab can run on (or migrate) `version`."""
    if version in known_revisions():
        return
    if version.isdigit() and int(version) > int(SCHEMA_HEAD):
        raise UnknownSchema(
            f"this database was made by a newer crab (schema {version}; this crab knows up "
            f"to {SCHEMA_HEAD}): run that crab, or restore a backup made by this one"
        )
    raise UnknownSchema(
        f"this database's schema {version!r} is not one crab made (this crab knows "
        f"{', '.join(known_revisions())})"
    )


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = create_engine(url)
        self.dialect: str = self._engine.dialect.name
        sqlite = self.dialect == "sqlite"
        # This process's turn to write to an SQLite database.
        self._writer = asyncio.Lock() if sqlite else None
        self._threads: SqliteThreads | None = None
        path = self._engine.url.database or ""
        if sqlite and path and path != ":memory:":
            self._threads = SqliteThreads(self._engine.url)

    # ---- the three verbs --------------------------------------------------

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        try:
            return await self._read(work, *args, **kwargs)
        except Exception as exc:
            _failed("read", exc)
            raise
        finally:
            _READ_SECONDS.observe(time.perf_counter() - start)

    async def _read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            threads = self._threads
            if threads is None:
                async with self._engine.connect() as conn:
                    return await conn.run_sync(work, *args, **kwargs)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                threads.readers, lambda: threads.read(work, *args, **kwargs)
            )
        except IntegrityError as exc:
            raise Conflict(CONFLICT) from exc

    async def read_now(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A read small enough to run on the event loop's own thread (SQLite):
        a lookup by primary key costs less than handing it to a database
        thread and back. Reads never wait for SQLite's writer (WAL).
        Elsewhere the same as `read`."""
        threads = self._threads
        if threads is None:
            return await self.read(work, *args, **kwargs)
        return threads.read(work, *args, **kwargs)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        try:
            return await self._write(work, *args, **kwargs)
        except Exception as exc:
            _failed("write", exc)
            raise
        finally:
            _WRITE_SECONDS.observe(time.perf_counter() - start)

    async def _write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            threads = self._threads
            if threads is None:
                async with self._transaction() as conn:
                    return await conn.run_sync(work, *args, **kwargs)
            loop = asyncio.get_running_loop()
            async with self._writer_turn():
                done = loop.run_in_executor(
                    threads.writer, lambda: threads.write(work, *args, **kwargs)
                )
                try:
                    return await asyncio.shield(done)
                except asyncio.CancelledError:
                    # The thread finishes the unit regardless; this process's
                    # writer lock is held until it has (so no other writer
                    # waits on SQLite's).
                    await asyncio.wait({done})
                    raise
        except IntegrityError as exc:
            raise Conflict(CONFLICT) from exc

    # ---- the rest of its life ------------------------------------------------

    async def migrate(self) -> None:
        """Brings the schema to the newest revision (safe to run every start).
        A schema this crab does not know (a newer crab's) is refused with
        UnknownSchema, the database untouched."""
        try:
            async with self._engine.connect() as conn:
                version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            version = None  # a new database: no version table yet
        if version == SCHEMA_HEAD:
            return
        if version is not None:
            check_known(str(version))
            log.info("upgrading the database from schema %s to %s", version, SCHEMA_HEAD)
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Held to commit: alembic runs inside this transaction (DDL included).
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        """Closes its connections and its SQLite threads (after a unit in hand)."""
        threads, self._threads = self._threads, None
        if threads is not None:
            await asyncio.to_thread(threads.close)
        await self._engine.dispose()

    # ---- on the event loop (PostgreSQL; SQLite in memory) --------------------

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        if self._writer is None:
            yield
            return
        async with self._writer:
            yield

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer_turn(), self._engine.connect() as conn:
            if self._writer is not None:
                await conn.execution_options(**{WRITE: True})
            async with conn.begin():
                yield conn


_READ_SECONDS = metrics.DATABASE_SECONDS.labels("read")
_WRITE_SECONDS = metrics.DATABASE_SECONDS.labels("write")


def _failed(operation: str, exc: Exception) -> None:
    """Counts a unit that failed in the database; a unit's own rule refusing
    (NotFound, ...) is an answer, not a database error."""
    if isinstance(exc, Conflict):
        metrics.DATABASE_ERRORS.labels(operation, "conflict").inc()
    elif not isinstance(exc, CrabError):
        metrics.DATABASE_ERRORS.labels(operation, failure_label(exc)).inc()


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config  # only when a migration is due

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


__all__ = [
    "MIGRATIONS",
    "SCHEMA_HEAD",
    "Database",
    "UnknownSchema",
    "check_known",
    "known_revisions",
]
