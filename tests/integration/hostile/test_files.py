"""Attack 10, reading the database: the data directory ends 0700 (a loose
one that already exists is tightened), the SQLite database and its -wal and
-shm files are 0600, for `crab serve` and for `crab user add`; a loose
folder crab cannot tighten stops it with a message saying what to do."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from crab.core.storage import files
from crab.core.storage.files import UnsafeFiles, private_dir
from tests.helpers.chats import Bystander
from tests.helpers.process import CrabProcess, run_crab


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_data_dir(tmp_path: Path) -> Path:
    """A data directory made by hand before the server's first start
    (requested before hostile_server, which starts in tmp_path/data)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    assert mode(data) == 0o755
    return data


@pytest.mark.slow  # a real crab process
async def test_a_loose_data_dir_is_tightened_and_the_database_is_private(
    loose_data_dir: Path, hostile_server: CrabProcess, bystander: Bystander
) -> None:
    await bystander.check()  # traffic: writes through the WAL
    assert mode(loose_data_dir) == 0o700
    for name in ("crab.db", "crab.db-wal", "crab.db-shm", "jwt-secret"):
        assert mode(loose_data_dir / name) == 0o600, name


@pytest.mark.slow  # a real crab process
async def test_database_files_left_readable_are_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with CrabProcess.start(data):
        pass
    for path in (data, *data.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (data / "crab.db-wal").touch(mode=0o644)
    with CrabProcess.start(data) as server:
        assert mode(data) == 0o700
        for path in data.iterdir():
            assert mode(path) == 0o600, path.name
        server.terminate()
        assert server.wait() == 0


@pytest.mark.slow  # a real crab process
def test_crab_user_add_makes_private_files(tmp_path: Path) -> None:
    data = tmp_path / "admin"
    done = run_crab(
        "user",
        "add",
        "carol",
        "--password-stdin",
        "--data-dir",
        str(data),
        input="correct horse battery\n",
    )
    assert done.returncode == 0, done.stderr
    assert mode(data) == 0o700
    assert mode(data / "crab.db") == 0o600


def test_a_loose_folder_that_cannot_be_tightened_stops_crab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "shared"
    data.mkdir(mode=0o755)
    data.chmod(0o755)

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "chmod", refuse)
    with pytest.raises(UnsafeFiles, match=r"mode 0755.*Operation not permitted.*chmod 700"):
        private_dir(data)
