"""Backup and restore of an SQLite database (`crab backup`, `crab restore`).

A backup is a plain SQLite file, a consistent copy of the database at one
moment, made by SQLite's online backup while `crab serve` keeps writing
(WAL: the copy is one read transaction, which never blocks the writer).
It holds the database only, not the token-signing secret (docs/backups.md).

A restore puts such a file in place of a stopped data directory's
database, after checking that it is one crab can open: an intact SQLite
file whose schema is this crab's or older (the next start migrates it).

PostgreSQL has its own tools (pg_dump, pg_restore): asked for one, these
say so."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from crab.core.storage.database import UnknownSchema, check_known
from crab.core.storage.files import PRIVATE_FILE, SQLITE_SIDE_FILES, private_dir
from crab.core.storage.lock import DatabaseLock, sqlite_file

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_MS = 10_000
PG_DUMP_HINT = (
    "crab backup and crab restore handle crab's SQLite database; for PostgreSQL use its own "
    "tools: pg_dump --format=custom --file=crab.dump DATABASE, and pg_restore --clean "
    "--if-exists --dbname=DATABASE crab.dump (README, Backups)"
)


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why."""


@dataclass(frozen=True)
class Copied:
    """What a backup or restore copied."""

    path: Path
    schema: str
    messages: int
    size: int
    set_aside: Path | None = None  # restore --force: the database that was there


def database_file(url: str) -> Path:
    """The SQLite file of a database URL; BackupError for PostgreSQL."""
    found = sqlite_file(url)
    if found is None:
        raise BackupError(PG_DUMP_HINT)
    return found


# ---- backup ---------------------------------------------------------------------


def backup(url: str, target: Path, force: bool = False) -> Copied:
    """A consistent copy of the database at `url` into `target` (0600),
    while crab runs. Refuses an existing `target` unless `force`."""
    source = database_file(url)
    if not source.is_file() or source.stat().st_size == 0:
        raise BackupError(f"no crab database at {source} (wrong --data-dir or --database?)")
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give a file name")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; give another name, or --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    tmp = target.with_name(target.name + ".tmp")
    _fresh_private(tmp)
    try:
        _online_copy(source, tmp)
        copied = _check(tmp)
        _durable_rename(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Copied(target, copied.schema, copied.messages, target.stat().st_size)


def _online_copy(source: Path, tmp: Path) -> None:
    src = sqlite3.connect(source, timeout=BUSY_MS / 1000)
    try:
        dst = sqlite3.connect(tmp)
        try:
            # All pages in one step: one read transaction, so one moment of
            # the database, however busy its writer (a step at a time would
            # start over after each of another process's commits).
            src.backup(dst)
            # A file of its own, without a -wal beside it to lose.
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            dst.close()
    except sqlite3.Error as error:
        raise BackupError(f"could not copy {source}: {error}") from None
    finally:
        src.close()


# ---- restore ----------------------------------------------------------------------


def restore(source: Path, url: str, force: bool = False) -> Copied:
    """`source` (a backup) as the database at `url`, which no crab process
    may be using. Refuses an existing database unless `force`, which keeps
    it aside as crab.db.before-restore-<time>."""
    target = database_file(url)
    checked = check_backup(source)
    if source.resolve() == target.resolve():
        raise BackupError(f"{source} is the database itself; give a backup")
    private_dir(target.parent)
    lock = DatabaseLock.exclusive(target)
    try:
        set_aside = None
        if _has_database(target):
            if not force:
                raise BackupError(
                    f"{target} already holds a database; --force replaces it "
                    "(it is kept aside as a .before-restore file)"
                )
            set_aside = _set_aside(target)
        tmp = target.with_name(target.name + ".restore.tmp")
        _fresh_private(tmp)
        try:
            _copy_file(source, tmp)
            for side in SQLITE_SIDE_FILES:  # stale pages of another database
                Path(f"{target}{side}").unlink(missing_ok=True)
            _durable_rename(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        lock.release()
    return Copied(target, checked.schema, checked.messages, target.stat().st_size, set_aside)


def check_backup(source: Path) -> Copied:
    """BackupError unless `source` is an intact crab database of this
    crab's schema or an older one."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    with source.open("rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise BackupError(f"{source} is not a crab backup (not an SQLite database)")
    wal = Path(f"{source}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        # Its newest pages are in the -wal, which a restore would not copy.
        raise BackupError(
            f"{source} has a {wal.name} beside it: a database in use (or copied while in "
            "use), not a backup; make one with crab backup"
        )
    return _check(source)


def _check(path: Path) -> Copied:
    """Intact, crab's, and a schema this crab knows; its size in messages."""
    # immutable: read as it is, no -wal or -shm made beside it.
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        raise BackupError(f"{path} cannot be opened: {error}") from None
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in result[:3])
            raise BackupError(f"{path} is damaged (integrity check: {problems})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"alembic_version", "users", "chats", "messages"} <= tables:
            raise BackupError(f"{path} is not a crab database (no crab tables in it)")
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if version is None:
            raise BackupError(f"{path} is not a crab database (no schema version in it)")
        try:
            check_known(str(version[0]))
        except UnknownSchema as error:
            raise BackupError(f"{path}: {error}") from None
        (messages,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a crab backup ({error})") from None
    finally:
        conn.close()
    return Copied(path, str(version[0]), int(messages), path.stat().st_size)


def _has_database(target: Path) -> bool:
    return target.exists() and target.stat().st_size > 0


def _set_aside(target: Path) -> Path:
    """The database there now, whole (its WAL folded in), renamed aside."""
    try:
        conn = sqlite3.connect(target, timeout=BUSY_MS / 1000)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        pass  # not a database we can open: it is set aside as it is, -wal and all
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = target.with_name(f"{target.name}.before-restore-{stamp}")
    os.replace(target, aside)
    for side in SQLITE_SIDE_FILES:
        found = Path(f"{target}{side}")
        if found.exists():
            os.replace(found, Path(f"{aside}{side}"))
    return aside


# ---- files -------------------------------------------------------------------------


def _fresh_private(path: Path) -> None:
    """An empty file at `path`, the owner's alone (a backup holds password
    hashes and every message), replacing one a failed run left."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def _copy_file(source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("r+b") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


def _durable_rename(tmp: Path, target: Path) -> None:
    """`tmp`'s bytes on disk, then the rename, then the directory entry: a
    crash leaves the old file or the whole new one, never a part."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse a directory fsync
            os.fsync(folder)
    finally:
        os.close(folder)


__all__ = [
    "PG_DUMP_HINT",
    "BackupError",
    "Copied",
    "backup",
    "check_backup",
    "database_file",
    "restore",
]
