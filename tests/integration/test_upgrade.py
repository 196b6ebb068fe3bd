"""A database made by the first release (schema 0001, filled by raw SQL as
that release stored it) upgrades when a real `crab serve` starts on it,
on SQLite and on PostgreSQL: every message is there in order, people sign
in with their old passwords, new messages follow. A newer crab's database
(a downgrade) stops every crab command with a message, untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from crab.client.connection import CrabClient
from crab.core.storage.database import SCHEMA_HEAD, _alembic_config
from tests.helpers.chats import all_messages
from tests.helpers.process import CrabProcess, run_crab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FIRST = "0001"
ROOM_MESSAGES = 300
DIRECT_MESSAGES = 40
PASSWORDS = {"alice": "alice's old password", "bob": "bob's old password", "carol": "carol's 1"}
FUTURE = "9999"  # no crab's revision yet

# The first release's tables, as it wrote them (0001_initial_schema.py):
# crab's own table definitions are today's, not that release's.
ts = sa.DateTime(timezone=True)
USERS = sa.table(
    "users",
    sa.column("id"), sa.column("username"), sa.column("display_name"),
    sa.column("password_hash"), sa.column("created_at", ts),
)  # fmt: skip
CHATS = sa.table(
    "chats",
    sa.column("id"), sa.column("kind"), sa.column("name"), sa.column("created_by"),
    sa.column("created_at", ts), sa.column("last_seq"), sa.column("direct_key"),
)  # fmt: skip
MEMBERS = sa.table(
    "members",
    sa.column("chat_id"), sa.column("user_id"), sa.column("joined_at", ts),
    sa.column("last_read_seq"),
)  # fmt: skip
MESSAGES = sa.table(
    "messages",
    sa.column("id"), sa.column("chat_id"), sa.column("seq"), sa.column("sender_id"),
    sa.column("client_message_id"), sa.column("text"), sa.column("created_at", ts),
)  # fmt: skip

ROOM, DIRECT = 1, 2
ALICE, BOB, CAROL = 1, 2, 3


def room_text(n: int) -> str:
    return f"room message {n} — ünïcode 🦀" if n % 7 == 0 else f"room message {n}"


def first_release_data(conn: Connection) -> None:
    """Schema 0001 and what that release stored: three people, a room of
    all three, a personal chat of alice and bob, their messages."""
    from alembic import command

    command.upgrade(_alembic_config(conn), FIRST)
    hasher = argon2.PasswordHasher()  # the real hashes, at the default cost
    start = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    conn.execute(
        sa.insert(USERS),
        [
            {"id": i, "username": name, "display_name": name.title(),
             "password_hash": hasher.hash(PASSWORDS[name]), "created_at": start}
            for i, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"))
        ],
    )  # fmt: skip
    conn.execute(
        sa.insert(CHATS),
        [
            {"id": 1, "kind": ROOM, "name": "general", "created_by": ALICE,
             "created_at": start, "last_seq": ROOM_MESSAGES, "direct_key": None},
            {"id": 2, "kind": DIRECT, "name": "", "created_by": ALICE, "created_at": start,
             "last_seq": DIRECT_MESSAGES, "direct_key": f"{ALICE}:{BOB}"},
        ],
    )  # fmt: skip
    conn.execute(
        sa.insert(MEMBERS),
        [{"chat_id": 1, "user_id": u, "joined_at": start, "last_read_seq": 10} for u in (1, 2, 3)]
        + [{"chat_id": 2, "user_id": u, "joined_at": start, "last_read_seq": 0} for u in (1, 2)],
    )
    rows = [
        {"chat_id": 1, "seq": n, "sender_id": (ALICE, BOB, CAROL)[n % 3],
         "client_message_id": f"old-room-{n}", "text": room_text(n),
         "created_at": start + timedelta(seconds=n)}
        for n in range(1, ROOM_MESSAGES + 1)
    ] + [
        {"chat_id": 2, "seq": n, "sender_id": (ALICE, BOB)[n % 2],
         "client_message_id": f"old-direct-{n}", "text": f"just us {n}",
         "created_at": start + timedelta(seconds=n)}
        for n in range(1, DIRECT_MESSAGES + 1)
    ]  # fmt: skip
    conn.execute(sa.insert(MESSAGES), rows)


async def run_on(url: str, work: Callable[[Connection], None]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(work)
    finally:
        await engine.dispose()


Where = tuple[str, tuple[str, ...]]  # a database's URL, and the crab options naming it


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """A fresh, empty database: SQLite in a data dir, or a PostgreSQL one."""
    data = tmp_path / "data"
    if request.param == "sqlite":
        data.mkdir(mode=0o700)
        return f"sqlite+aiosqlite:///{data / 'crab.db'}", ("--data-dir", str(data))
    url: str = request.getfixturevalue("pg_database_url")
    return url, ("--data-dir", str(data), "--database", url)


async def test_a_first_release_database_upgrades_on_start_keeping_every_message(
    where: Where,
) -> None:
    url, options = where
    await run_on(url, first_release_data)

    with CrabProcess.start(None, *options) as server:
        server.wait_for_line(f"upgrading the database from schema {FIRST} to {SCHEMA_HEAD}")
        alice = CrabClient("127.0.0.1", server.port)
        bob = CrabClient("127.0.0.1", server.port)
        try:
            await alice.sign_in("alice", PASSWORDS["alice"])
            await bob.sign_in("bob", PASSWORDS["bob"])
            room = await all_messages(alice, 1)
            assert [m.id for m in room] == list(range(1, ROOM_MESSAGES + 1))
            assert [m.text for m in room] == [room_text(n) for n in range(1, ROOM_MESSAGES + 1)]
            assert [m.sender.username for m in room[:3]] == ["bob", "carol", "alice"]
            assert room[0].sender.display_name == "Bob"
            direct = await all_messages(bob, 2)
            assert [m.text for m in direct] == [f"just us {n}" for n in range(1, 41)]
            chats = {c.chat.id: c for c in await alice.my_chats()}
            assert chats.keys() == {1, 2}

            async with alice.session() as live:
                cid = await live.send(1, "the first message after the upgrade")
                ack = await live.wait_for(
                    lambda f: f.ack is not None and f.ack.client_message_id == cid
                )
            assert ack.ack is not None
            assert ack.ack.message.id == ROOM_MESSAGES + 1
            edited = await bob.edit_message(2, 1, "an old message, edited after the upgrade")
            assert edited.text == "an old message, edited after the upgrade"
            newest = (await all_messages(bob, 1))[-1]
            assert newest.text == "the first message after the upgrade"
        finally:
            alice.close()
            bob.close()
        server.terminate()
        assert server.wait() == 0
    assert await version_of(url) == SCHEMA_HEAD


async def version_of(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return str(await conn.scalar(sa.text("SELECT version_num FROM alembic_version")))
    finally:
        await engine.dispose()


async def snapshot(url: str) -> list[tuple[object, ...]]:
    """What a downgrade must not touch: the version, the people, the messages."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            found: list[tuple[object, ...]] = []
            for query in (
                "SELECT version_num FROM alembic_version",
                "SELECT id, username, password_hash FROM users ORDER BY id",
                "SELECT chat_id, seq, text FROM messages ORDER BY chat_id, seq",
            ):
                found += [tuple(r) for r in (await conn.execute(sa.text(query))).all()]
            return found
    finally:
        await engine.dispose()


async def test_a_newer_crabs_database_is_refused_by_every_command_and_left_untouched(
    where: Where,
) -> None:
    url, options = where
    await run_on(url, first_release_data)

    def from_the_future(conn: Connection) -> None:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})

    await run_on(url, from_the_future)
    before = await snapshot(url)

    expected = (
        f"this database was made by a newer crab (schema {FUTURE}; this crab knows up to "
        f"{SCHEMA_HEAD}): run that crab, or restore a backup"
    )
    for command in (
        ("serve", "--port", "0"),
        ("worker", "--broker", "amqp://127.0.0.1:1/"),
        ("user", "list"),
        ("export", "general", "--format", "jsonl"),
    ):
        done = run_crab(*command, *options)
        assert done.returncode != 0, (command, done.stdout)
        assert expected in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
    assert await snapshot(url) == before
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_a_first_release_backup_restores_and_upgrades_on_the_next_start(
    tmp_path: Path,
) -> None:
    old, data = tmp_path / "old.db", tmp_path / "data"
    await run_on(f"sqlite+aiosqlite:///{old}", first_release_data)
    done = run_crab("restore", str(old), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert f"schema {FIRST}, {ROOM_MESSAGES + DIRECT_MESSAGES} messages" in done.stdout
    with CrabProcess.start(data) as server:
        carol = CrabClient("127.0.0.1", server.port)
        try:
            await carol.sign_in("carol", PASSWORDS["carol"])
            room = await all_messages(carol, 1)
        finally:
            carol.close()
    assert [m.text for m in room] == [room_text(n) for n in range(1, ROOM_MESSAGES + 1)]
