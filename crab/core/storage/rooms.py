"""Rooms as an admin sees them (`crab room list`) and their deletion
(`crab room delete`): the room and everything stored in it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.admin import RoomInfo
from crab.core.domain.models import ChatKind
from crab.core.storage.tables import (
    call_members,
    calls,
    chats,
    invites,
    members,
    mentions,
    messages,
    reactions,
    users,
)

_MEMBERS = (
    sa.select(sa.func.count())
    .select_from(members)
    .where(members.c.chat_id == chats.c.id)
    .scalar_subquery()
)
# Messages not deleted by their sender (a tombstone keeps its row).
_MESSAGES = (
    sa.select(sa.func.count())
    .select_from(messages)
    .where(messages.c.chat_id == chats.c.id, messages.c.deleted_at.is_(None))
    .scalar_subquery()
)
_ROOMS = (
    sa.select(
        chats.c.id,
        chats.c.name,
        users.c.username.label("owner"),
        _MEMBERS.label("members"),
        _MESSAGES.label("messages"),
        chats.c.created_at,
    )
    .join(users, users.c.id == chats.c.created_by)
    .where(chats.c.kind == int(ChatKind.ROOM))
    .order_by(chats.c.id)
)


def _to_room(row: Any) -> RoomInfo:
    return RoomInfo(row.id, row.name, row.owner, row.members, row.messages, row.created_at)


def list_all(conn: Connection) -> list[RoomInfo]:
    """Every room (personal conversations are not rooms: not listed)."""
    return [_to_room(row) for row in conn.execute(_ROOMS)]


def by_id(conn: Connection, chat_id: int) -> RoomInfo | None:
    row = conn.execute(_ROOMS.where(chats.c.id == chat_id)).first()
    return _to_room(row) if row else None


def named(conn: Connection, name: str) -> list[RoomInfo]:
    """The rooms of exactly this name (names are not unique)."""
    return [_to_room(row) for row in conn.execute(_ROOMS.where(chats.c.name == name))]


def delete(conn: Connection, chat_id: int) -> list[int]:
    """Deletes the room with its messages, reactions, mentions, calls,
    pending invites and memberships; returns who were its members. On
    SQLite the full-text index follows by trigger (migration 0004)."""
    member_ids = [
        int(m)
        for m in conn.execute(
            sa.select(members.c.user_id).where(members.c.chat_id == chat_id)
        ).scalars()
    ]
    in_room = sa.select(messages.c.id).where(messages.c.chat_id == chat_id)
    room_calls = sa.select(calls.c.id).where(calls.c.chat_id == chat_id)
    conn.execute(sa.delete(reactions).where(reactions.c.message_id.in_(in_room)))
    conn.execute(sa.delete(mentions).where(mentions.c.chat_id == chat_id))
    conn.execute(sa.delete(messages).where(messages.c.chat_id == chat_id))
    conn.execute(sa.delete(call_members).where(call_members.c.call_id.in_(room_calls)))
    conn.execute(sa.delete(calls).where(calls.c.chat_id == chat_id))
    conn.execute(sa.delete(invites).where(invites.c.chat_id == chat_id))
    conn.execute(sa.delete(members).where(members.c.chat_id == chat_id))
    conn.execute(sa.delete(chats).where(chats.c.id == chat_id))
    return member_ids
