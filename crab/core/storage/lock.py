"""Who has an SQLite database open, told by a lock file beside it
(crab.db.lock): every crab process that opens the database (serve,
worker, the admin commands) holds a shared lock on it while it does, so
any number of them run side by side; `crab restore` takes it exclusive,
and so never swaps a database under a process that uses it. The kernel
drops the lock when a process ends, kill -9 included: nothing stale to
clean up."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from crab.core.storage.files import PRIVATE_FILE, private_file


class DatabaseInUse(Exception):
    """The lock is held the other way (a restore, or processes using the database)."""


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL; None for another database or SQLite in memory."""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def lock_path(database: Path) -> Path:
    return Path(f"{database}.lock")


class DatabaseLock:
    """A held lock on an SQLite database's lock file; `release` (or the
    process's end) lets it go."""

    def __init__(self, database: Path, exclusive: bool) -> None:
        path = lock_path(database)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            private_file(path)  # as every file in the data directory, even if left loose
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BaseException as error:
            os.close(self._fd)
            self._fd = None
            if not isinstance(error, BlockingIOError):
                raise
            if exclusive:
                raise DatabaseInUse(
                    f"{database} is in use by a crab process (crab serve, crab worker or an "
                    "admin command): stop it first"
                ) from None
            raise DatabaseInUse(
                f"{database} is being restored (crab restore); start crab once it has finished"
            ) from None

    @classmethod
    def shared(cls, url: str) -> DatabaseLock | None:
        """For a process that uses the database (None: not an SQLite file)."""
        database = sqlite_file(url)
        return None if database is None else cls(database, exclusive=False)

    @classmethod
    def exclusive(cls, database: Path) -> DatabaseLock:
        return cls(database, exclusive=True)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock


__all__ = ["DatabaseInUse", "DatabaseLock", "lock_path", "sqlite_file"]
