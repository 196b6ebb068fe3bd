"""The file side of backup and restore (storage/backup.py), in-process on
small SQLite files: what is checked before anything is copied, and the
lock a restore needs. The commands themselves, against a live server,
are in tests/integration/test_backup.py."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from pathlib import Path

import pytest

from crab.core.storage.backup import BackupError, backup, check_backup, restore
from crab.core.storage.database import SCHEMA_HEAD
from crab.core.storage.lock import DatabaseInUse, DatabaseLock


def crab_like(path: Path, version: str = SCHEMA_HEAD, messages: int = 3) -> Path:
    """An SQLite file with crab's table names and a schema version (enough
    for the checks; the real schema is the integration tests' business)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for table in ("users", "chats", "messages"):
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (version,))
        conn.executemany("INSERT INTO messages (text) VALUES (?)", [("hi",)] * messages)
    return path


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def test_a_backup_is_a_private_checked_copy_and_a_second_needs_force(tmp_path: Path) -> None:
    source = crab_like(tmp_path / "crab.db")
    target = tmp_path / "b.db"
    copied = backup(url(source), target)
    assert (copied.schema, copied.messages) == (SCHEMA_HEAD, 3)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert check_backup(target).messages == 3
    assert not (tmp_path / "b.db.tmp").exists()
    with pytest.raises(BackupError, match="exists; give another name, or --force"):
        backup(url(source), target)
    assert backup(url(source), target, force=True).messages == 3


def test_check_refuses_what_crab_cannot_restore(tmp_path: Path) -> None:
    cases: dict[Path, str] = {}
    path = tmp_path / "text"
    path.write_text("SQLite format 2, honestly")
    cases[path] = "not an SQLite database"
    path = tmp_path / "foreign.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
    cases[path] = "no crab tables"
    cases[crab_like(tmp_path / "newer.db", "9999")] = "made by a newer crab (schema 9999"
    cases[crab_like(tmp_path / "other.db", "1a2b3c")] = "'1a2b3c' is not one crab made"
    live = crab_like(tmp_path / "live.db")
    Path(f"{live}-wal").write_bytes(b"x")
    cases[live] = "live.db-wal beside it"
    cases[tmp_path] = "is not a file"
    for path, reason in cases.items():
        with pytest.raises(BackupError, match=reason.replace("(", r"\(")):
            check_backup(path)


def test_restore_refuses_while_a_crab_process_holds_the_database(
    tmp_path: Path,
) -> None:
    source = crab_like(tmp_path / "b.db")
    data = tmp_path / "data"
    target = data / "crab.db"
    data.mkdir()
    held = DatabaseLock.shared(url(target))  # as `crab serve` holds it
    try:
        with pytest.raises(DatabaseInUse, match="in use by a crab process"):
            restore(source, url(target))
    finally:
        assert held is not None
        held.release()
    assert not target.exists()
    assert restore(source, url(target)).messages == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(BackupError, match="is the database itself"):
        restore(target, url(target), force=True)
    assert check_backup(target).messages == 3


def test_backup_and_restore_point_postgresql_at_its_own_tools(tmp_path: Path) -> None:
    pg = "postgresql+asyncpg://crab@db/crab"
    with pytest.raises(BackupError, match="pg_dump --format=custom"):
        backup(pg, tmp_path / "b.db")
    with pytest.raises(BackupError, match="pg_restore"):
        restore(crab_like(tmp_path / "b.db"), pg)
