"""Storage-level exceptions as the caller hears them: an outage is
DatabaseUnavailable, a full disk DiskFull, anything else a bug (None). The
exceptions are the real ones, raised by SQLite and PostgreSQL's driver."""

from __future__ import annotations

import errno
import logging
import sqlite3

import asyncpg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from crab.core.storage.failures import DISK_FULL, UNAVAILABLE, RateLimitedWarnings, as_crab_error
from crab.errors import DatabaseUnavailable, DiskFull


def raised_by_sqlite(sql: str) -> sa_exc.DBAPIError:
    engine = sa.create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    except sa_exc.DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


def test_a_full_sqlite_database_is_disk_full() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t(x)")
        conn.exec_driver_sql("PRAGMA max_page_count=3")  # SQLITE_FULL past 3 pages
        with pytest.raises(sa_exc.OperationalError) as err:
            conn.exec_driver_sql("INSERT INTO t VALUES (zeroblob(100000))")
    engine.dispose()
    error = as_crab_error(err.value)
    assert isinstance(error, DiskFull) and error.message == DISK_FULL
    assert isinstance(as_crab_error(OSError(errno.ENOSPC, "No space left on device")), DiskFull)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
        sqlite3.OperationalError("unable to open database file"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_lost_database_is_unavailable(exc: Exception) -> None:
    if isinstance(exc, sqlite3.OperationalError):
        exc = raised_by_sqlite("ATTACH DATABASE '/nonexistent/dir/x.db' AS x")
    error = as_crab_error(exc)
    assert isinstance(error, DatabaseUnavailable) and error.message == UNAVAILABLE


def test_a_wrapped_driver_error_is_judged_by_its_cause() -> None:
    try:
        try:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        except OSError as cause:
            raise RuntimeError("the pool gave up") from cause
    except RuntimeError as exc:
        assert isinstance(as_crab_error(exc), DatabaseUnavailable)


@pytest.mark.parametrize(
    "exc",
    [
        raised_by_sqlite("SELECT * FROM no_such_table"),
        raised_by_sqlite("SELEKT 1"),
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        asyncpg.UniqueViolationError("duplicate key"),
        ValueError("a bug"),
        KeyError("int64"),
    ],
    ids=["no such table", "syntax", "integrity", "unique", "value", "key"],
)
def test_anything_else_is_a_bug(exc: Exception) -> None:
    assert as_crab_error(exc) is None


def test_one_warning_per_kind_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    warnings = RateLimitedWarnings(10.0, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING):
        logged = [warnings.warn("away", "the database is unavailable") for _ in range(500)]
        logged.append(warnings.warn("full", "the disk is full"))
        clock[0] = 10.5
        logged.append(warnings.warn("away", "the database is unavailable"))
    assert logged.count(True) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "the database is unavailable",
        "the disk is full",
        "the database is unavailable (+499 more in the last 10s)",
    ]
