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
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from sqlalchemy.engine import Connection

from crab.config import sqlite_url
from crab.core.domain.models import ChatKind
from crab.core.storage import chats, tables, users
from crab.core.storage.database import Database
from crab.core.storage.engine import ensure_sqlite_dir

T = TypeVar("T")

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


# Words for seeded conversations: common English first, then a long tail of
# made-up words (product names, hosts, code words), drawn by Zipf's law.
COMMON_WORDS = tuple(
    """the to and a of i is it you that in we for on this be have with not
    are can but just so will do at if me my what was all from up out ok about
    get no there one they now like think should time know yes need how make
    see then more when work good today test deploy server build release
    review merge branch fix bug issue meeting lunch call tomorrow week team
    customer data query index cache latency error log alert config update
    client api database backup ticket sprint plan design docs migration
    rollback staging production network disk memory cpu thread queue
    message search user account password token session report metrics
    dashboard incident outage friday monday coffee thanks please sorry
    great nice agreed later soon done looks works broken""".split()
)
_SYLLABLES = ("ka", "lo", "mi", "ten", "dra", "vo", "sel", "qu", "ix", "ar", "no", "bel")


def vocabulary(size: int = 5000) -> tuple[str, ...]:
    """COMMON_WORDS then made-up words, most frequent first (deterministic)."""
    rng = random.Random(12)
    tail: dict[str, None] = {}
    while len(tail) < size - len(COMMON_WORDS):
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in COMMON_WORDS:
            tail[word] = None
    return COMMON_WORDS + tuple(tail)


@dataclass(frozen=True)
class SeededChats:
    """What `seed_conversations` stored."""

    user_id: int  # the reader: a member of every chat but the last
    chat_ids: tuple[int, ...]
    messages: int


def seed_conversations(
    data_dir: Path, username: str, password: str, messages: int, chats: int = 4, seed: int = 1
) -> SeededChats:
    """A new account `username` (signing in with `password`) and another,
    `username`-other, who talk in `chats` rooms: `messages` messages in all,
    spread evenly, 4 to 16 words each from `vocabulary()` by Zipf's law.
    `username` is a member of every room but the last (the other's alone).
    Same speed as `seed_history`, plus the search index's upkeep."""
    ids = asyncio.run(_rooms(data_dir, username, password, chats))
    reader, other, chat_ids = ids
    words = vocabulary()
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(words) + 1)))
    rng = random.Random(seed)
    engine = sa.create_engine(f"sqlite:///{data_dir / 'crab.db'}")
    try:
        columns = ["chat_id", "seq", "sender_id", "client_message_id", "text", "created_at"]
        insert = sa.insert(tables.messages).compile(dialect=engine.dialect, column_keys=columns)
        assert list(insert.positiontup or []) == columns
        created = tables.messages.c.created_at.type
        stored_time = created.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        now = stored_time(datetime.now(UTC)) if stored_time else datetime.now(UTC)
        last_seq = dict.fromkeys(chat_ids, 0)
        for first in range(0, messages, BATCH):
            rows = []
            for n in range(first, min(first + BATCH, messages)):
                chat_id = chat_ids[n % len(chat_ids)]
                last_seq[chat_id] = seq = last_seq[chat_id] + 1
                sender = other if chat_id == chat_ids[-1] or n % 3 else reader
                text = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(4, 16)))
                rows.append((chat_id, seq, sender, f"s{n}", text, now))
            with engine.begin() as conn:
                conn.exec_driver_sql(insert.string, rows)
        with engine.begin() as conn:
            for chat_id, seq in last_seq.items():
                conn.execute(
                    sa.update(tables.chats).where(tables.chats.c.id == chat_id).values(last_seq=seq)
                )
                conn.execute(
                    sa.update(tables.members)
                    .where(tables.members.c.chat_id == chat_id)
                    .values(last_read_seq=seq)
                )
        return SeededChats(reader, tuple(chat_ids), messages)
    finally:
        engine.dispose()


async def _rooms(
    data_dir: Path, username: str, password: str, count: int
) -> tuple[int, int, list[int]]:
    return await _fresh(data_dir, password, _accounts_and_rooms, username, count)


async def _fresh(
    data_dir: Path,
    password: str,
    work: Callable[[Connection, str, str, Any], T],
    username: str,
    arg: Any,
) -> T:
    """Migrates the data dir's SQLite and runs `work(conn, username,
    password_hash, arg)` in one write."""
    url = sqlite_url(data_dir)
    ensure_sqlite_dir(url)
    database = Database(url)
    try:
        await database.migrate()
        # Any argon2 hash verifies under any cost setting: the cheap one saves time here.
        password_hash = PasswordHasher.from_parameters(profiles.CHEAPEST).hash(password)
        return await database.write(work, username, password_hash, arg)
    finally:
        await database.close()


def _accounts_and_rooms(
    conn: Connection, username: str, password_hash: str, count: int
) -> tuple[int, int, list[int]]:
    now = datetime.now(UTC)
    reader = users.insert(conn, username, username, password_hash, now)
    other = users.insert(conn, username + "-other", username + "-other", password_hash, now)
    chat_ids = []
    for n in range(count):
        chat = chats.create(conn, ChatKind.ROOM, f"room {n + 1}", other.id, now)
        chats.add_member(conn, chat.id, other.id, now)
        if n < count - 1:
            chats.add_member(conn, chat.id, reader.id, now)
        chat_ids.append(chat.id)
    return reader.id, other.id, chat_ids


async def _room(data_dir: Path, username: str, password: str, room: str) -> tuple[int, int]:
    """The schema, the account and its room."""
    return await _fresh(data_dir, password, _account_and_room, username, room)


def _account_and_room(
    conn: Connection, username: str, password_hash: str, room: str
) -> tuple[int, int]:
    now = datetime.now(UTC)
    user = users.insert(conn, username, username, password_hash, now)
    chat = chats.create(conn, ChatKind.ROOM, room, user.id, now)
    chats.add_member(conn, chat.id, user.id, now)
    return user.id, chat.id
