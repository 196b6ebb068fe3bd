"""Chats and their members (with each member's read position)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import Chat, ChatKind, ChatSummary, ReadPosition, User
from crab.core.storage import mentions as mention_store
from crab.core.storage import messages as message_store
from crab.core.storage.fast_statements import FastStatement
from crab.core.storage.tables import chats, members, users
from crab.core.storage.users import USER_COLUMNS, to_user

CHAT_COLUMNS = (
    chats.c.id,
    chats.c.kind,
    chats.c.name,
    chats.c.created_at,
    chats.c.last_seq,
    chats.c.topic,
    chats.c.created_by,
    chats.c.last_change_seq,
)


def to_chat(row: Any, name: str | None = None) -> Chat:
    room = row.kind == int(ChatKind.ROOM)
    return Chat(
        id=row.id,
        kind=ChatKind(row.kind),
        name=row.name if name is None else name,
        created_at=row.created_at,
        last_message_id=row.last_seq,
        # A room's owner is its creator; a direct chat has neither.
        topic=row.topic if room else "",
        owner_id=row.created_by if room else 0,
        last_change_seq=row.last_change_seq,
    )


def direct_key(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


def create(
    conn: Connection,
    kind: ChatKind,
    name: str,
    creator_id: int,
    now: datetime,
    key: str | None = None,
) -> Chat:
    result = conn.execute(
        sa.insert(chats).values(
            kind=int(kind), name=name, created_by=creator_id, created_at=now, direct_key=key
        )
    )
    (chat_id,) = result.inserted_primary_key or (0,)
    owner = creator_id if kind == ChatKind.ROOM else 0
    return Chat(id=int(chat_id), kind=kind, name=name, created_at=now, owner_id=owner)


def rename(conn: Connection, chat_id: int, name: str) -> None:
    conn.execute(sa.update(chats).where(chats.c.id == chat_id).values(name=name))


def set_topic(conn: Connection, chat_id: int, topic: str) -> None:
    conn.execute(sa.update(chats).where(chats.c.id == chat_id).values(topic=topic))


def get(conn: Connection, chat_id: int) -> Chat | None:
    row = (conn.execute(sa.select(*CHAT_COLUMNS).where(chats.c.id == chat_id))).first()
    return to_chat(row) if row else None


_AS_MEMBER = (
    sa.select(*CHAT_COLUMNS)
    .join(members, members.c.chat_id == chats.c.id)
    .where(chats.c.id == sa.bindparam("chat_id"), members.c.user_id == sa.bindparam("user_id"))
)


def get_as_member(conn: Connection, chat_id: int, user_id: int) -> Chat | None:
    """The chat, if `user_id` is a member of it (one query)."""
    row = conn.execute(_AS_MEMBER, {"chat_id": chat_id, "user_id": user_id}).first()
    return to_chat(row) if row else None


def direct_between(conn: Connection, a: int, b: int) -> Chat | None:
    query = sa.select(*CHAT_COLUMNS).where(chats.c.direct_key == direct_key(a, b))
    row = (conn.execute(query)).first()
    return to_chat(row) if row else None


def is_member(conn: Connection, chat_id: int, user_id: int) -> bool:
    query = sa.select(members.c.user_id).where(
        members.c.chat_id == chat_id, members.c.user_id == user_id
    )
    return (conn.execute(query)).first() is not None


def memberships(conn: Connection, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which (chat, user) pairs are memberships: a worker's whole group of
    sends checked in one query instead of one per message."""
    if not pairs:
        return set()
    wanted = set(pairs)
    params = {"chats": list({p[0] for p in wanted}), "users": list({p[1] for p in wanted})}
    return {(c, u) for c, u in _MEMBERSHIPS.all(conn, params) if (c, u) in wanted}


# Two INs, not one IN of pairs: SQLite scans the table for a row-value IN of
# several pairs (see messages._BY_CLIENT_IDS); this uses the primary key.
_MEMBERSHIPS = FastStatement(
    sa.select(members.c.chat_id, members.c.user_id).where(
        members.c.chat_id.in_(sa.bindparam("chats", expanding=True)),
        members.c.user_id.in_(sa.bindparam("users", expanding=True)),
    ),
    expanding=("chats", "users"),
)


def add_member(conn: Connection, chat_id: int, user_id: int, now: datetime) -> None:
    """Joins at the current end of the chat: older history counts as read."""
    last_seq = sa.select(chats.c.last_seq).where(chats.c.id == chat_id).scalar_subquery()
    conn.execute(
        sa.insert(members).values(
            chat_id=chat_id, user_id=user_id, joined_at=now, last_read_seq=last_seq
        )
    )


def remove_member(conn: Connection, chat_id: int, user_id: int) -> bool:
    result = conn.execute(
        sa.delete(members).where(members.c.chat_id == chat_id, members.c.user_id == user_id)
    )
    return result.rowcount > 0


def member_users(conn: Connection, chat_id: int) -> list[User]:
    rows = conn.execute(
        sa.select(*USER_COLUMNS)
        .join(members, members.c.user_id == users.c.id)
        .where(members.c.chat_id == chat_id)
        .order_by(users.c.username)
    )
    return [to_user(row) for row in rows]


def member_user(conn: Connection, chat_id: int, user_id: int) -> User:
    """A member as a User (the caller has checked they are one)."""
    row = conn.execute(
        sa.select(*USER_COLUMNS)
        .join(members, members.c.user_id == users.c.id)
        .where(members.c.chat_id == chat_id, members.c.user_id == user_id)
    ).one()
    return to_user(row)


def co_member_ids(conn: Connection, user_id: int) -> set[int]:
    """Everyone who shares a chat with the user, the user included."""
    mine = sa.select(members.c.chat_id).where(members.c.user_id == user_id)
    rows = conn.execute(sa.select(members.c.user_id).where(members.c.chat_id.in_(mine)).distinct())
    return {row.user_id for row in rows} | {user_id}


def member_ids(conn: Connection, chat_id: int) -> list[int]:
    rows = conn.execute(sa.select(members.c.user_id).where(members.c.chat_id == chat_id))
    return [row.user_id for row in rows]


def positions(conn: Connection, user_id: int) -> dict[int, int]:
    """chat id -> newest message id, for every chat the user is in."""
    rows = conn.execute(_POSITIONS, {"user_id": user_id})
    return {row.id: row.last_seq for row in rows}


_POSITIONS = (
    sa.select(chats.c.id, chats.c.last_seq)
    .join(members, members.c.chat_id == chats.c.id)
    .where(members.c.user_id == sa.bindparam("user_id"))
)


def direct_names(conn: Connection, user_id: int, chat_ids: list[int]) -> dict[int, str]:
    """For direct chats: the other person's username, the chat's name for me."""
    if not chat_ids:
        return {}
    rows = conn.execute(
        sa.select(members.c.chat_id, users.c.username)
        .join(users, users.c.id == members.c.user_id)
        .where(members.c.chat_id.in_(chat_ids), members.c.user_id != user_id)
    )
    return {row.chat_id: row.username for row in rows}


def view(conn: Connection, chat: Chat, viewer_id: int) -> Chat:
    """The chat as the viewer sees it (a direct chat is named for the other)."""
    if chat.kind != ChatKind.DIRECT:
        return chat
    names = direct_names(conn, viewer_id, [chat.id])
    return dataclasses.replace(chat, name=names.get(chat.id, chat.name))


def summaries(conn: Connection, user_id: int) -> list[ChatSummary]:
    rows = (
        conn.execute(
            sa.select(*CHAT_COLUMNS, members.c.last_read_seq)
            .join(members, members.c.chat_id == chats.c.id)
            .where(members.c.user_id == user_id)
        )
    ).all()
    names = direct_names(conn, user_id, [r.id for r in rows if r.kind == int(ChatKind.DIRECT)])
    last = message_store.last_messages(conn, {r.id: r.last_seq for r in rows if r.last_seq})
    mentioned = mention_store.unread_counts(conn, user_id)
    result = [
        ChatSummary(
            chat=to_chat(row, names.get(row.id)),
            last_message=last.get(row.id),
            # Ids are gap-free per chat, so unread is a subtraction.
            unread_count=max(0, row.last_seq - row.last_read_seq),
            last_read_id=row.last_read_seq,
            mention_count=mentioned.get(row.id, 0),
        )
        for row in rows
    ]
    # Most recently active first, like every messenger's chat list.
    result.sort(
        key=lambda s: s.last_message.sent_at if s.last_message else s.chat.created_at,
        reverse=True,
    )
    return result


def read_positions(conn: Connection, chat_id: int) -> list[ReadPosition]:
    """Each member's read position in the chat."""
    rows = conn.execute(
        sa.select(members.c.user_id, members.c.last_read_seq).where(members.c.chat_id == chat_id)
    )
    return [ReadPosition(row.user_id, row.last_read_seq) for row in rows]


def mark_read(conn: Connection, chat_id: int, user_id: int, seq: int) -> int | None:
    """Moves the read position forward only (never back, never past the end);
    the new position, or None when it did not move."""
    last_seq = sa.select(chats.c.last_seq).where(chats.c.id == chat_id).scalar_subquery()
    moved = conn.execute(
        sa.update(members)
        .where(
            members.c.chat_id == chat_id,
            members.c.user_id == user_id,
            members.c.last_read_seq < seq,
        )
        .values(
            last_read_seq=sa.func.min(seq, last_seq)
            if conn.dialect.name == "sqlite"
            else sa.func.least(seq, last_seq)
        )
    )
    if not moved.rowcount:
        return None
    position = conn.execute(
        sa.select(members.c.last_read_seq).where(
            members.c.chat_id == chat_id, members.c.user_id == user_id
        )
    ).scalar_one()
    return int(position)


def leave_all(conn: Connection, user_id: int) -> list[int]:
    """Removes the user from every chat (a deleted account); their chat ids."""
    chat_ids = list(positions(conn, user_id))
    conn.execute(sa.delete(members).where(members.c.user_id == user_id))
    return chat_ids


def existing(conn: Connection, chat_ids: list[int]) -> set[int]:
    """Which of these chats still exist: a server's periodic check of the
    chats its open streams follow (a room deleted by `crab room delete`)."""
    if not chat_ids:
        return set()
    query = sa.select(chats.c.id).where(chats.c.id.in_(chat_ids))
    return {int(found) for found in conn.execute(query).scalars()}
