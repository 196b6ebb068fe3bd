"""Each command's first result, stored by the worker in the transaction
that acted (see tables.command_results): a redelivered command, or a
client's retry with the same request id, reads it instead of acting twice.
The key names the user, so nobody can read another user's results."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.storage.tables import command_results

KEEP_FOR_SECONDS = 24 * 3600  # a retry comes within seconds; a day is plenty


def key(user_id: int, request_id: str) -> str:
    return f"{user_id}:{request_id}"


def find(conn: Connection, result_key: str) -> bytes | None:
    found = conn.scalar(
        sa.select(command_results.c.outcome).where(command_results.c.key == result_key)
    )
    return None if found is None else bytes(found)


def insert(conn: Connection, result_key: str, outcome: bytes, when: datetime) -> None:
    conn.execute(command_results.insert().values(key=result_key, outcome=outcome, created_at=when))


def purge(conn: Connection, older_than: datetime) -> int:
    """Deletes results stored before `older_than` (by the created_at index)."""
    done = conn.execute(command_results.delete().where(command_results.c.created_at < older_than))
    return int(done.rowcount or 0)
