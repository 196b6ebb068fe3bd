"""`crab backup` of a live server and `crab restore` into a stopped data
directory, through real processes: every message acknowledged before the
backup began is in it, once, as sent; and what is not a backup crab can
use (garbage, an empty file, another program's SQLite file, a damaged or
live one, a newer crab's database) is refused with a message, never a
traceback. PostgreSQL: the README's pg_dump and pg_restore lines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.core.storage.database import SCHEMA_HEAD
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages, join_room
from tests.helpers.process import CrabProcess, crab_command, crab_env, run_crab
from tests.helpers.server import PASSWORD
from tests.helpers.services import NewDatabase, pg_bindir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ANSWER_WAIT = 60.0  # a bound on a hang, not a measure of speed
BEFORE = 40  # acknowledged sends before the backup starts, at least
AFTER = 40  # and after it has finished: traffic runs all through it


async def send_acked(live: SessionStream, chat: int, text: str) -> int:
    cid = await live.send(chat, text)

    def answers(frame: pb.ServerFrame) -> bool:
        found = frame.ack or frame.send_error
        return found is not None and found.client_message_id == cid

    frame = await live.wait_for(answers, ANSWER_WAIT)
    assert frame.ack is not None, frame.send_error
    return frame.ack.message.id


class Traffic:
    """Senders in one room, each sending as soon as its last send was
    acknowledged; `acked` is every acknowledged (id, text), in order."""

    def __init__(self) -> None:
        self.acked: list[tuple[int, str]] = []
        self.stop = asyncio.Event()
        self.grew = asyncio.Event()

    async def send_from(self, client: CrabClient, room: int, name: str) -> None:
        async with client.session() as live:
            n = 0
            while not self.stop.is_set():
                n += 1
                text = f"{name} {n} ü🦀"
                self.acked.append((await send_acked(live, room, text), text))
                self.grew.set()

    async def until(self, count: int) -> None:
        while len(self.acked) < count:
            self.grew.clear()
            await asyncio.wait_for(self.grew.wait(), ANSWER_WAIT)


async def crab_async(*args: str) -> tuple[int, str]:
    """`crab ARGS` as a process while this event loop keeps sending."""
    proc = await asyncio.create_subprocess_exec(
        *crab_command(*args),
        env=crab_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), ANSWER_WAIT)
    return await proc.wait(), out.decode()


async def test_a_backup_under_traffic_restores_every_message_acknowledged_before_it(
    tmp_path: Path,
) -> None:
    data, restored, backup = tmp_path / "data", tmp_path / "restored", tmp_path / "crab.backup"
    traffic = Traffic()
    with CrabProcess.start(data) as server:
        alice = CrabClient("127.0.0.1", server.port)
        bob = CrabClient("127.0.0.1", server.port)
        try:
            await alice.sign_up("alice", PASSWORD)
            await bob.sign_up("bob", PASSWORD)
            room = await join_room(alice, bob, "busy")
            senders = [
                asyncio.create_task(traffic.send_from(alice, room, "alice")),
                asyncio.create_task(traffic.send_from(bob, room, "bob")),
            ]
            await traffic.until(BEFORE)
            before = list(traffic.acked)  # acknowledged before the backup began
            code, out = await crab_async("backup", str(backup), "--data-dir", str(data))
            assert code == 0, out
            during = len(traffic.acked) - len(before)
            await traffic.until(len(traffic.acked) + AFTER)
            traffic.stop.set()
            await asyncio.gather(*senders)

            # A running server's database is not replaced.
            refused = run_crab("restore", str(backup), "--data-dir", str(data), "--force")
            assert refused.returncode != 0
            assert "in use by a crab process" in refused.stderr
            assert "Traceback" not in refused.stderr
        finally:
            alice.close()
            bob.close()
        server.terminate()
        assert server.wait() == 0
    assert f"schema {SCHEMA_HEAD}" in out
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # password hashes are in it

    done = run_crab("restore", str(backup), "--data-dir", str(restored))
    assert done.returncode == 0, done.stderr
    with CrabProcess.start(restored) as server:
        reader = CrabClient("127.0.0.1", server.port)
        try:
            await reader.sign_in("alice", PASSWORD)
            found = [(m.id, m.text) for m in await all_messages(reader, room)]
        finally:
            reader.close()
    # Gap-free, each once, each exactly as one acknowledged send; every send
    # acknowledged before the backup began is there.
    assert [i for i, _ in found] == list(range(1, len(found) + 1))
    assert set(found) <= set(traffic.acked)
    assert set(before) <= set(found)
    assert len(found) < len(traffic.acked), "the backup was taken after the traffic ended"
    print(f"before {len(before)}, during the backup {during}, in it {len(found)}")


def crab_database(path: Path) -> None:
    """A crab database of this crab's schema, made by a crab command."""
    done = run_crab("user", "add", "carol", "--database", f"sqlite+aiosqlite:///{path}",
                    "--password-stdin", input=f"{PASSWORD}\n")  # fmt: skip
    assert done.returncode == 0, done.stderr


def sql(path: Path, statement: str) -> list[tuple[object, ...]]:
    """One statement on an SQLite file, committed, the file closed again
    (so its -wal is folded in and removed)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(statement).fetchall()


def refused(*args: str) -> str:
    done = run_crab(*args)
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    return done.stderr


def test_restore_refuses_what_is_not_a_backup_this_crab_can_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    other = tmp_path / "other.sqlite"
    sql(other, "CREATE TABLE notes (text TEXT)")
    newer = tmp_path / "newer.db"
    crab_database(newer)
    sql(newer, "UPDATE alembic_version SET version_num = '9999'")
    damaged = tmp_path / "damaged.db"
    crab_database(damaged)
    raw = bytearray(damaged.read_bytes())
    raw[4096:] = os.urandom(len(raw) - 4096)  # every page but the first overwritten
    damaged.write_bytes(bytes(raw))

    in_use = tmp_path / "in-use.db"
    crab_database(in_use)
    Path(f"{in_use}-wal").write_bytes(b"pages not yet in the file")

    cases = {
        in_use: "-wal beside it",
        garbage: "not a crab backup",
        empty: "not a crab backup",
        other: "not a crab database",
        newer: "made by a newer crab (schema 9999",
        damaged: "malformed",
        tmp_path / "missing": "is not a file",
    }
    for path, reason in cases.items():
        message = refused("restore", str(path), "--data-dir", str(data))
        assert reason in message, (path.name, message)
    assert not (data / "crab.db").exists()


def test_restore_keeps_a_database_already_there_unless_forced_and_then_sets_it_aside(
    tmp_path: Path,
) -> None:
    data, backup = tmp_path / "data", tmp_path / "b.db"
    crab_database(data / "crab.db")
    sql(data / "crab.db", "UPDATE users SET display_name = 'was here'")
    made = run_crab("backup", str(backup), "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    sql(data / "crab.db", "UPDATE users SET display_name = 'after the backup'")

    assert "already holds a database" in refused("restore", str(backup), "--data-dir", str(data))
    done = run_crab("restore", str(backup), "--data-dir", str(data), "--force")
    assert done.returncode == 0, done.stderr
    (aside,) = data.glob("crab.db.before-restore-*")
    assert sql(data / "crab.db", "SELECT display_name FROM users") == [("was here",)]
    assert sql(aside, "SELECT display_name FROM users") == [("after the backup",)]
    assert not Path(f"{data / 'crab.db'}-wal").exists()
    assert stat.S_IMODE((data / "crab.db").stat().st_mode) == 0o600


def test_backup_refuses_an_existing_file_and_postgresql(tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "b.db"
    crab_database(data / "crab.db")
    backup.write_text("keep me")
    assert "--force" in refused("backup", str(backup), "--data-dir", str(data))
    assert backup.read_text() == "keep me"
    done = run_crab("backup", str(backup), "--data-dir", str(data), "--force")
    assert done.returncode == 0, done.stderr
    assert backup.read_bytes().startswith(b"SQLite format 3\x00")

    url = "postgresql+asyncpg://crab@127.0.0.1:5432/crab"
    message = refused("backup", str(tmp_path / "pg.db"), "--database", url)
    assert "pg_dump" in message
    assert "pg_restore" in refused("restore", str(backup), "--database", url)
    assert "no crab database" in refused("backup", str(tmp_path / "x"), "--data-dir",
                                         str(tmp_path / "nothing"))  # fmt: skip
    assert not (tmp_path / "nothing" / "crab.db").exists()
    # Somewhere no file can be made (/proc): a message, not a traceback.
    assert "backup failed" in refused("backup", "/proc/crab-backup.db", "--data-dir", str(data))


def test_crab_refuses_to_open_a_database_while_it_is_being_restored(tmp_path: Path) -> None:
    """The restore's exclusive lock, held (as while it copies): a server
    refuses to start on the database instead of opening it half-copied."""
    from crab.core.storage.lock import DatabaseLock

    data = tmp_path / "data"
    crab_database(data / "crab.db")
    lock = DatabaseLock.exclusive(data / "crab.db")
    try:
        message = refused("user", "list", "--data-dir", str(data))
    finally:
        lock.release()
    assert "being restored" in message
    assert run_crab("user", "list", "--data-dir", str(data)).returncode == 0


async def test_the_readme_postgresql_lines_back_up_and_restore_crab(
    pg_databases: NewDatabase, tmp_path: Path
) -> None:
    """README, Backups: pg_dump, then pg_restore into an empty database, and
    crab runs on it with every message."""
    bindir = pg_bindir()
    assert bindir is not None
    bindir = (bindir / "initdb").resolve().parent  # a link? pg_dump is beside its target
    source, target = await pg_databases(migrated=True), await pg_databases()
    dump = tmp_path / "crab.dump"
    with CrabProcess.start(tmp_path / "data", "--database", source) as server:
        alice = CrabClient("127.0.0.1", server.port)
        try:
            await alice.sign_up("alice", PASSWORD)
            room = await alice.create_room("kept")
            async with alice.session() as live:
                for n in range(3):
                    await send_acked(live, room.id, f"kept {n}")
        finally:
            alice.close()
    for command in (
        [bindir / "pg_dump", "--format=custom", f"--file={dump}", libpq(source)],
        [bindir / "pg_restore", "--no-owner", f"--dbname={libpq(target)}", dump],
    ):
        proc = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert await proc.wait() == 0, err.decode()
    with CrabProcess.start(tmp_path / "data", "--database", target) as server:
        alice = CrabClient("127.0.0.1", server.port)
        try:
            await alice.sign_in("alice", PASSWORD)
            found = [m.text for m in await all_messages(alice, room.id)]
        finally:
            alice.close()
    assert found == ["kept 0", "kept 1", "kept 2"]


def libpq(url: str) -> str:
    """CRAB_DATABASE's URL as PostgreSQL's tools take it (README)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
