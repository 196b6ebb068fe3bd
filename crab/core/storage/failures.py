"""What a storage-level exception means for the caller: a database that
cannot be reached now (UNAVAILABLE, "try again") or a full disk
(RESOURCE_EXHAUSTED), instead of a bug (INTERNAL). The API's guard, its
auth listener, the session stream and the worker all ask `as_crab_error`.

An outage fails every call at once: each kind is logged as one warning
line at most every `WARN_EVERY` seconds, with a count of those left out,
never a traceback per call.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator

import sqlalchemy.exc as sa_exc

from crab.errors import CrabError, DatabaseUnavailable, DiskFull

log = logging.getLogger(__name__)

UNAVAILABLE = "the database is unavailable; try again shortly"
DISK_FULL = "the server's disk is full; nothing can be stored until its operator frees space"
WARN_EVERY = 10.0  # seconds between two warnings of one kind
# PostgreSQL SQLSTATEs: class 08 connection exceptions; shutting down,
# crashed, starting up; too many connections. 53100 is disk_full.
_PG_AWAY = ("08", "57P01", "57P02", "57P03", "53300")
_PG_DISK_FULL = "53100"
_SQLITE_FULL_TEXT = "database or disk is full"
# SQLite: busy or locked past the busy timeout, the file cannot be opened
# (no file descriptor left), the disk failed a read or write.
_SQLITE_AWAY = (
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_IOERR,
)


def as_crab_error(exc: BaseException) -> CrabError | None:
    """The expected failure `exc` stands for (logged, rate-limited), or None
    when it is none of these: a bug, for the caller to report as one."""
    kind = _kind(exc)
    if kind is None:
        return None
    error: CrabError = DiskFull(DISK_FULL) if kind is DiskFull else DatabaseUnavailable(UNAVAILABLE)
    outage_log.warn(kind.__name__, f"{error.message} ({short(exc)})")
    return error


def failure_label(exc: BaseException) -> str:
    """What went wrong, for a metric (no log line): unavailable, disk_full or other."""
    kind = _kind(exc)
    return "other" if kind is None else ("disk_full" if kind is DiskFull else "unavailable")


def _kind(exc: BaseException) -> type[CrabError] | None:
    chain = list(_chain(exc))
    if any(_disk_full(e) for e in chain):
        return DiskFull
    if any(_away(e) for e in chain):
        return DatabaseUnavailable
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, the driver error SQLAlchemy wrapped, and their causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        found = todo.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        yield found
        orig = getattr(found, "orig", None)
        # Causes only: an exception merely raised while handling another
        # (__context__) says nothing about the database.
        todo += [orig if isinstance(orig, BaseException) else None, found.__cause__]


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else ""


def _sqlite_code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else 0  # the primary code of an extended one


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        return _sqlite_code(exc) == sqlite3.SQLITE_FULL or _SQLITE_FULL_TEXT in str(exc)
    return _sqlstate(exc) == _PG_DISK_FULL


def _away(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):  # not every one: "no such table" is a bug
        return _sqlite_code(exc) in _SQLITE_AWAY
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return not isinstance(exc.orig, sqlite3.Error)  # SQLite's: judged above
    return (
        isinstance(
            exc,
            OSError  # refused, reset, timed out (TimeoutError is one too)
            | sa_exc.TimeoutError,  # no connection free in the pool in time
        )
        or _sqlstate(exc).startswith(_PG_AWAY)  # asyncpg's connection errors among them
        or _asyncpg_interface_error(exc)  # "connection is closed"
    )


def _asyncpg_interface_error(exc: BaseException) -> bool:
    # By name: importing asyncpg costs an SQLite server ~60 ms of start-up.
    return any(
        c.__name__ == "InterfaceError" and c.__module__.startswith("asyncpg")
        for c in type(exc).__mro__
    )


def short(exc: BaseException) -> str:
    """One line for a log: the exception's type and the first line of its text."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}"


class RateLimitedWarnings:
    """One warning line per kind at most every `every` seconds; the next
    one says how many were left out meanwhile."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warn(self, kind: str, text: str) -> bool:
        """Logs `text` unless a `kind` warning went out lately; True if logged."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._every:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return False
        self._last[kind] = now
        left_out = self._left_out.pop(kind, 0)
        more = ""
        if left_out and last is not None:
            more = f" (+{left_out} more in the last {now - last:.0f}s)"
        log.warning("%s%s", text, more)
        return True


outage_log = RateLimitedWarnings(WARN_EVERY)
