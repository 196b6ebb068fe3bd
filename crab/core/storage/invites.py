"""Pending invites: to a room, or to a personal conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import Chat, ChatKind, Invite, User
from crab.core.storage.tables import chats, invites, users

inviter = users.alias("inviter")
invitee = users.alias("invitee")

_SELECT = (
    sa.select(
        invites.c.id,
        invites.c.created_at,
        inviter.c.id.label("inviter_id"),
        inviter.c.username.label("inviter_username"),
        inviter.c.display_name.label("inviter_display_name"),
        invitee.c.id.label("invitee_id"),
        invitee.c.username.label("invitee_username"),
        invitee.c.display_name.label("invitee_display_name"),
        chats.c.id.label("chat_id"),
        chats.c.kind.label("chat_kind"),
        chats.c.name.label("chat_name"),
        chats.c.created_at.label("chat_created_at"),
        chats.c.last_seq.label("chat_last_seq"),
        chats.c.topic.label("chat_topic"),
        chats.c.created_by.label("chat_created_by"),
    )
    .join(inviter, inviter.c.id == invites.c.inviter_id)
    .join(invitee, invitee.c.id == invites.c.invitee_id)
    .outerjoin(chats, chats.c.id == invites.c.chat_id)
)


def room_key(chat_id: int, invitee_id: int) -> str:
    return f"room:{chat_id}:{invitee_id}"


def direct_key(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"direct:{low}:{high}"


def _to_invite(row: Any) -> Invite:
    chat = None
    if row.chat_id is not None:
        room = row.chat_kind == int(ChatKind.ROOM)
        chat = Chat(
            row.chat_id,
            ChatKind(row.chat_kind),
            row.chat_name,
            row.chat_created_at,
            row.chat_last_seq,
            topic=row.chat_topic if room else "",
            owner_id=row.chat_created_by if room else 0,
        )
    return Invite(
        id=row.id,
        inviter=User(row.inviter_id, row.inviter_username, row.inviter_display_name),
        invitee=User(row.invitee_id, row.invitee_username, row.invitee_display_name),
        chat=chat,
        created_at=row.created_at,
    )


def key_taken(conn: Connection, key: str) -> bool:
    query = sa.select(invites.c.id).where(invites.c.pending_key == key)
    return (conn.execute(query)).first() is not None


def insert(
    conn: Connection,
    inviter_id: int,
    invitee_id: int,
    chat_id: int | None,
    key: str,
    now: datetime,
) -> int:
    result = conn.execute(
        sa.insert(invites).values(
            inviter_id=inviter_id,
            invitee_id=invitee_id,
            chat_id=chat_id,
            pending_key=key,
            created_at=now,
        )
    )
    (invite_id,) = result.inserted_primary_key or (0,)
    return int(invite_id)


def get(conn: Connection, invite_id: int) -> Invite | None:
    row = (conn.execute(_SELECT.where(invites.c.id == invite_id))).first()
    return _to_invite(row) if row else None


def delete(conn: Connection, invite_id: int) -> None:
    conn.execute(sa.delete(invites).where(invites.c.id == invite_id))


def delete_for_room(conn: Connection, chat_id: int, invitee_id: int) -> None:
    key = room_key(chat_id, invitee_id)
    conn.execute(sa.delete(invites).where(invites.c.pending_key == key))


def received(conn: Connection, user_id: int) -> list[Invite]:
    query = _SELECT.where(invites.c.invitee_id == user_id).order_by(invites.c.id)
    return [_to_invite(r) for r in conn.execute(query)]


def sent(conn: Connection, user_id: int) -> list[Invite]:
    query = _SELECT.where(invites.c.inviter_id == user_id).order_by(invites.c.id)
    return [_to_invite(r) for r in conn.execute(query)]


def received_and_sent(conn: Connection, user_id: int) -> tuple[list[Invite], list[Invite]]:
    return received(conn, user_id), sent(conn, user_id)


def delete_of_user(conn: Connection, user_id: int) -> None:
    """Every pending invite the user sent or received (a deleted account)."""
    conn.execute(
        sa.delete(invites).where(
            sa.or_(invites.c.inviter_id == user_id, invites.c.invitee_id == user_id)
        )
    )
