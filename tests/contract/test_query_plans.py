"""The worker's per-group lookups use an index on SQLite, never a scan of
the whole table: a row-value IN of several pairs was a SCAN of `messages`
(~0.3 s per group of sends at 1,000,000 stored messages)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crab.core.storage import chats, messages, users
from crab.core.storage.database import Database


@pytest.fixture
async def sqlite(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crab.db'}"
    made = Database(url)
    await made.migrate()
    await made.close()
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    yield engine
    engine.dispose()


def _plans(engine: Engine, work: Callable[[Connection], Any]) -> list[str]:
    """What SQLite plans for each statement `work` runs (seen by SQLite
    itself, whichever way it was sent: SQLAlchemy or storage/fast_statements.py)."""
    ran: list[str] = []
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_trace_callback(ran.append)  # each statement, its values filled in
        try:
            work(conn)
        finally:
            raw.set_trace_callback(None)
    assert ran
    with engine.connect() as conn:
        return [
            str(row[3])
            for statement in ran
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement)
        ]


@pytest.mark.parametrize(
    "lookup",
    [
        lambda conn: messages.by_client_ids(conn, [(1, "a"), (2, "b"), (3, "c")]),
        lambda conn: chats.memberships(conn, [(1, 1), (1, 2), (2, 3)]),
        lambda conn: users.by_ids(conn, [1, 2, 3]),
        lambda conn: messages.quotes(conn, {(1, 1), (1, 2), (2, 3)}),
        lambda conn: messages.reactions_of(conn, {(1, 1), (1, 2), (2, 3)}),
        lambda conn: messages.changes_after(conn, 1, 5, 200),
    ],
    ids=["re-sends", "memberships", "senders", "quotes", "reactions", "changes"],
)
def test_group_lookups_search_an_index(sqlite: Engine, lookup: Callable[[Connection], Any]) -> None:
    plans = _plans(sqlite, lookup)
    scans = [p for p in plans if p.startswith("SCAN") and "CONSTANT" not in p]
    assert not scans, plans
    assert any(p.startswith("SEARCH") for p in plans), plans


def test_pairs_not_asked_for_are_left_out(sqlite: Engine) -> None:
    """Two INs match the cross product; only the pairs asked for come back."""
    with sqlite.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, username, display_name, password_hash, created_at) "
                "VALUES (1, 'a', 'A', 'x', '2024-01-01 00:00:00'), "
                "(2, 'b', 'B', 'x', '2024-01-01 00:00:00')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO chats (id, kind, name, created_by, created_at, last_seq) "
                "VALUES (1, 1, 'r', 1, '2024-01-01 00:00:00', 0), "
                "(2, 1, 's', 1, '2024-01-01 00:00:00', 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO members (chat_id, user_id, last_read_seq, joined_at) VALUES "
                "(1, 1, 0, '2024-01-01 00:00:00'), (2, 2, 0, '2024-01-01 00:00:00'), "
                "(1, 2, 0, '2024-01-01 00:00:00')"
            )
        )
    with sqlite.connect() as conn:
        assert chats.memberships(conn, [(1, 1), (2, 2)]) == {(1, 1), (2, 2)}  # not (1, 2)
        # Lists padded to a power of two (3 -> 4, 5 -> 8) answer the same.
        assert chats.memberships(conn, [(1, 1), (1, 2), (2, 9)]) == {(1, 1), (1, 2)}
        found = users.by_ids(conn, [2, 1, 7, 8, 9])
        assert sorted(found) == [1, 2] and found[2].username == "b"
