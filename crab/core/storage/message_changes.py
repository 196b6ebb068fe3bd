"""Changes to stored messages: edits, deletes, reactions. Each takes the
chat's next change sequence number (docs/conversation.md), in the
transaction that makes it; the readers are in messages.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import CALL_NOTE_PREFIX, ChatKind
from crab.core.storage.tables import chats, members, messages, reactions


@dataclass(frozen=True, slots=True)
class Target:
    """A message about to change, with what the rules need."""

    row_id: int  # messages.id: what reactions point at
    sender_id: int
    deleted: bool
    owner_id: int  # the room's creator; 0 for a direct chat (no owner)
    call_note: bool = False  # a line an ended call left (never edited)


def target(conn: Connection, chat_id: int, seq: int) -> Target | None:
    row = conn.execute(
        sa.select(
            messages.c.id,
            messages.c.sender_id,
            messages.c.deleted_at,
            messages.c.client_message_id,
            chats.c.kind,
            chats.c.created_by,
        )
        .join(chats, chats.c.id == messages.c.chat_id)
        .where(messages.c.chat_id == chat_id, messages.c.seq == seq)
    ).first()
    if row is None:
        return None
    owner = row.created_by if row.kind == int(ChatKind.ROOM) else 0
    note = row.client_message_id.startswith(CALL_NOTE_PREFIX)
    return Target(row.id, row.sender_id, row.deleted_at is not None, owner, note)


def next_change_seq(conn: Connection, chat_id: int) -> int:
    """Takes the chat's next change number. The row lock on the chat
    serialises changes (and sends) to it, which keeps the numbers gap-free
    and in commit order."""
    return int(
        conn.execute(
            sa.update(chats)
            .where(chats.c.id == chat_id)
            .values(last_change_seq=chats.c.last_change_seq + 1)
            .returning(chats.c.last_change_seq)
        ).scalar_one()
    )


def edit(conn: Connection, row_id: int, text: str, change_seq: int, now: datetime) -> None:
    conn.execute(
        sa.update(messages)
        .where(messages.c.id == row_id)
        .values(text=text, edited_at=now, change_seq=change_seq)
    )


def delete(conn: Connection, row_id: int, change_seq: int, now: datetime) -> None:
    """A tombstone: the text is overwritten (not kept anywhere), the
    reactions go with it."""
    conn.execute(sa.delete(reactions).where(reactions.c.message_id == row_id))
    conn.execute(
        sa.update(messages)
        .where(messages.c.id == row_id)
        .values(text="", deleted_at=now, change_seq=change_seq, mentions_room=False)
    )


def emojis(conn: Connection, row_id: int) -> set[str]:
    """The distinct emojis on a message."""
    query = sa.select(reactions.c.emoji).where(reactions.c.message_id == row_id).distinct()
    return {row.emoji for row in conn.execute(query)}


def has_reacted(conn: Connection, row_id: int, user_id: int, emoji: str) -> bool:
    query = sa.select(reactions.c.emoji).where(
        reactions.c.message_id == row_id,
        reactions.c.user_id == user_id,
        reactions.c.emoji == emoji,
    )
    return conn.execute(query).first() is not None


def add_reaction(conn: Connection, row_id: int, user_id: int, emoji: str, now: datetime) -> None:
    conn.execute(
        sa.insert(reactions).values(message_id=row_id, user_id=user_id, emoji=emoji, created_at=now)
    )


def remove_reaction(conn: Connection, row_id: int, user_id: int, emoji: str) -> None:
    conn.execute(
        sa.delete(reactions).where(
            reactions.c.message_id == row_id,
            reactions.c.user_id == user_id,
            reactions.c.emoji == emoji,
        )
    )


def mark_changed(conn: Connection, row_id: int, change_seq: int) -> None:
    conn.execute(sa.update(messages).where(messages.c.id == row_id).values(change_seq=change_seq))


def change_positions(conn: Connection, user_id: int) -> dict[int, int]:
    """chat id -> its newest change number, for every chat the user is in."""
    rows = conn.execute(
        sa.select(chats.c.id, chats.c.last_change_seq)
        .join(members, members.c.chat_id == chats.c.id)
        .where(members.c.user_id == user_id)
    )
    return {row.id: row.last_change_seq for row in rows}
