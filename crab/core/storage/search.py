"""Message search candidates: the newest messages in the user's chats (now)
that hold the query's words, found through the full-text index of
migration 0004 (SQLite FTS5, PostgreSQL tsvector + GIN). Ranking and marks
are the domain's (crab/core/domain/search.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import Message, User
from crab.core.domain.search import Query
from crab.core.storage import mentions as mention_store
from crab.core.storage.tables import UTCDateTime

# What migration 0004 creates beside tables.py (the schema test skips them).
SQLITE_TABLES = frozenset(
    "messages_fts" + suffix for suffix in ("", "_data", "_idx", "_docsize", "_config")
)
POSTGRESQL_INDEX = "ix_messages_text_search"


def in_tables_py(name: str | None, kind: str, parents: object = None) -> bool:
    """alembic's include_name for comparing tables.py with the database:
    False only for the full-text index objects above."""
    if kind == "table":
        return name not in SQLITE_TABLES
    return not (kind == "index" and name == POSTGRESQL_INDEX)


_COLUMNS = """m.id AS row_id, m.chat_id, m.seq, m.text, m.created_at, m.client_message_id,
    m.edited_at, m.change_seq, m.mentions_room,
    u.id AS sender_id, u.username, u.display_name"""
_MINE = """JOIN members AS mb ON mb.chat_id = m.chat_id AND mb.user_id = :user_id
    JOIN users AS u ON u.id = m.sender_id"""
_FILTER = "m.deleted_at IS NULL AND (:chat_id = 0 OR m.chat_id = :chat_id)"

# CROSS JOIN makes SQLite read the index first, newest match first (FTS5
# walks rowids backwards), keeping those in the user's chats: it stops at
# `limit` instead of reading every message of the user's chats.
_SQLITE = f"""SELECT {_COLUMNS}
    FROM messages_fts AS f CROSS JOIN messages AS m ON m.id = f.rowid
    {_MINE}
    WHERE messages_fts MATCH :match AND {_FILTER}
    ORDER BY f.rowid DESC LIMIT :limit"""
_POSTGRESQL = f"""SELECT {_COLUMNS}
    FROM messages AS m {_MINE}
    WHERE to_tsvector('simple', m.text) @@ to_tsquery('simple', :match) AND {_FILTER}
    ORDER BY m.id DESC LIMIT :limit"""
_TYPES = {"created_at": UTCDateTime(), "edited_at": UTCDateTime()}
_STATEMENTS = {
    "sqlite": sa.text(_SQLITE).columns(**_TYPES),
    "postgresql": sa.text(_POSTGRESQL).columns(**_TYPES),
}


def fts5_match(query: Query, every: bool) -> str:
    """An FTS5 query of the words, each a quoted string (so nothing the user
    typed is FTS5 syntax: no NEAR, OR, column filter or '-'); the last one
    with * when it is a prefix. `every`: all the words, else any."""
    terms = ['"' + word.replace('"', '""') + '"' for word in query.words]
    if query.prefix:
        terms[-1] += "*"
    return (" AND " if every else " OR ").join(terms)


def tsquery(query: Query, every: bool) -> str:
    """The same as a PostgreSQL tsquery: each word a quoted lexeme."""
    terms = ["'" + word.replace("\\", "\\\\").replace("'", "''") + "'" for word in query.words]
    if query.prefix:
        terms[-1] += ":*"
    return (" & " if every else " | ").join(terms)


def candidates(
    conn: Connection, user_id: int, chat_id: int, query: Query, every: bool, limit: int
) -> list[tuple[int, Message]]:
    """(row id, message) of the `limit` newest live messages holding all
    (`every`) or any of the words, in chats `user_id` is a member of now
    (`chat_id` 0) or in that one chat."""
    dialect = conn.dialect.name
    match = fts5_match(query, every) if dialect == "sqlite" else tsquery(query, every)
    params = {"user_id": user_id, "chat_id": chat_id, "match": match, "limit": limit}
    found = _to_candidates(conn.execute(_STATEMENTS[dialect], params))
    # Their mentions: one more query, only if some text holds an '@'.
    wanted = {(m.chat_id, m.id) for _, m in found if "@" in m.text}
    mentioned = mention_store.of_messages(conn, wanted)
    if not mentioned:
        return found
    return [
        (row_id, dataclasses.replace(m, mention_user_ids=mentioned.get((m.chat_id, m.id), ())))
        for row_id, m in found
    ]


def _to_candidates(rows: Sequence[Any] | Any) -> list[tuple[int, Message]]:
    senders: dict[int, User] = {}
    out = []
    for row in rows:
        row_id, chat_id, seq, text, created_at, client_id, edited_at, change_seq = row[:8]
        room, sender_id, username, display_name = row[8:]
        sender = senders.get(sender_id)
        if sender is None:
            sender = senders[sender_id] = User(sender_id, username, display_name)
        message = Message(
            chat_id, seq, sender, text, created_at, client_id,
            edited_at=edited_at, change_seq=change_seq, mentions_room=bool(room),
        )  # fmt: skip
        out.append((row_id, message))
    return out
