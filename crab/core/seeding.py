"""Filling a crab database directly: the supported way for tools (the bench,
demos, load tests) to store more than the API could send in reasonable time.

This module is public: its names and what they store stay as documented,
whatever the storage layer under it becomes. Everything else under
`crab.core` is the server's own and may change without notice.

Run it on a data directory no server has open (it writes as the only
writer, in large transactions); then start `crab serve --data-dir` on it.
It is synchronous: from async code, call it in a thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from sqlalchemy.engine import Connection

from crab.config import sqlite_url
from crab.core.domain.models import ChatKind
from crab.core.storage import chats, tables, users
from crab.core.storage.database import Database
from crab.core.storage.engine import ensure_sqlite_dir

BATCH = 100_000  # messages per transaction


@dataclass(frozen=True)
class SeededChat:
    """What `seed_history` stored: a room and its one member."""

    chat_id: int
    user_id: int
    messages: int


def seed_history(
    data_dir: Path, username: str, password: str, messages: int, room: str = "history"
) -> SeededChat:
    """A new account `username` (signing in with `password`) alone in a new
    room `room` that holds `messages` messages from it, ids 1..messages,
    message n reading "history message n", all read. The SQLite database in
    `data_dir` is created and migrated if needed.

    About 90,000 messages a second here: the insert is compiled once and run
    as the driver's executemany, BATCH rows a transaction."""
    user_id, chat_id = asyncio.run(_room(data_dir, username, password, room))
    engine = sa.create_engine(f"sqlite:///{data_dir / 'crab.db'}")
    try:
        columns = ["chat_id", "seq", "sender_id", "client_message_id", "text", "created_at"]
        insert = sa.insert(tables.messages).compile(dialect=engine.dialect, column_keys=columns)
        assert list(insert.positiontup or []) == columns
        created = tables.messages.c.created_at.type
        stored_time = created.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        now = stored_time(datetime.now(UTC)) if stored_time else datetime.now(UTC)
        for first in range(1, messages + 1, BATCH):
            rows = [
                (chat_id, seq, user_id, f"h{seq}", f"history message {seq}", now)
                for seq in range(first, min(first + BATCH, messages + 1))
            ]
            with engine.begin() as conn:
                conn.exec_driver_sql(insert.string, rows)
        with engine.begin() as conn:
            chat, members = tables.chats, tables.members
            conn.execute(sa.update(chat).where(chat.c.id == chat_id).values(last_seq=messages))
            conn.execute(
                sa.update(members)
                .where(members.c.chat_id == chat_id)
                .values(last_read_seq=messages)
            )
        return SeededChat(chat_id, user_id, messages)
    finally:
        engine.dispose()


async def _room(data_dir: Path, username: str, password: str, room: str) -> tuple[int, int]:
    """The schema, the account and its room."""
    url = sqlite_url(data_dir)
    ensure_sqlite_dir(url)
    database = Database(url)
    try:
        await database.migrate()
        # Any argon2 hash verifies under any cost setting: the cheap one saves time here.
        password_hash = PasswordHasher.from_parameters(profiles.CHEAPEST).hash(password)
        return await database.write(_account_and_room, username, password_hash, room)
    finally:
        await database.close()


def _account_and_room(
    conn: Connection, username: str, password_hash: str, room: str
) -> tuple[int, int]:
    now = datetime.now(UTC)
    user = users.insert(conn, username, username, password_hash, now)
    chat = chats.create(conn, ChatKind.ROOM, room, user.id, now)
    chats.add_member(conn, chat.id, user.id, now)
    return user.id, chat.id
