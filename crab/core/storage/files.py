"""Who may read crab's files: the data directory holds password hashes,
every message and the token-signing secret, so it is the owner's alone
(0700), and so are the SQLite database and its -wal and -shm files (0600),
whether crab creates them or finds them already there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class UnsafeFiles(Exception):
    """A file or folder others can read that crab could not make private."""


def _tighten(path: Path, mode: int, what: str) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077 == 0:
        return
    try:
        os.chmod(path, mode)
    except OSError as error:
        raise UnsafeFiles(
            f"the {what} {path} can be read by other users (mode {current:04o}) and crab "
            f"could not make it private ({error.strerror}); run `chmod {mode:o} {path}` as its "
            "owner, or choose another place"
        ) from None


def private_dir(path: Path) -> None:
    """Creates `path` (and missing parents) as 0700, or tightens it to 0700."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR, "data directory")


def private_file(path: Path) -> None:
    """An existing file tightened to 0600 (the signing secret, ...)."""
    _tighten(path, PRIVATE_FILE, "file")


def private_sqlite_files(database: Path) -> None:
    """The database file exists and is 0600 before SQLite opens it (SQLite
    gives its -wal and -shm files the database file's mode); files left by
    an older crab are tightened."""
    if not database.parent.exists():
        database.parent.mkdir(mode=PRIVATE_DIR, parents=True)
    fd = os.open(database, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    os.close(fd)
    for path in (database, *(Path(f"{database}{side}") for side in SQLITE_SIDE_FILES)):
        if path.exists():
            _tighten(path, PRIVATE_FILE, "database file")


__all__ = ["UnsafeFiles", "private_dir", "private_file", "private_sqlite_files"]
