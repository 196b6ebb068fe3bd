"""Who a message mentions: a row per mentioned member (mentions table) and
a flag for @room (messages.mentions_room). Written in the transaction that
stores or changes the message; read with it (messages.py), and counted
per chat for "my unread mentions" (chats.summaries).

Only members of the chat at the time are stored, never the sender (nobody
needs telling what they wrote). Rows exist only for a message whose text
holds an '@', which is what lets the readers skip the rest for free."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.mentions import Mentions
from crab.core.storage.fast_statements import FastStatement
from crab.core.storage.tables import members, mentions, messages, users


def members_named(
    conn: Connection, wanted: Mapping[int, Collection[str]]
) -> dict[tuple[int, str], int]:
    """(chat, username) -> user id, for the names that are members of
    their chat: a whole group of sends in one query."""
    if not wanted:
        return {}
    names = sorted({name for names in wanted.values() for name in names})
    params = {"chats": sorted(wanted), "names": names}
    return {
        (chat_id, username): user_id
        for chat_id, username, user_id in _MEMBERS_NAMED.all(conn, params)
        if username in wanted[chat_id]
    }


# Two INs (see messages._BY_CLIENT_IDS); pairs not asked for are dropped above.
_MEMBERS_NAMED = FastStatement(
    sa.select(members.c.chat_id, users.c.username, users.c.id)
    .join(members, members.c.user_id == users.c.id)
    .where(
        users.c.username.in_(sa.bindparam("names", expanding=True)),
        members.c.chat_id.in_(sa.bindparam("chats", expanding=True)),
    ),
    expanding=("chats", "names"),
)


def resolve(
    found: Mapping[tuple[int, str], int], chat_id: int, sender_id: int, parsed: Mentions
) -> tuple[int, ...]:
    """The user ids a message mentions, ascending (the order every reader
    gives them in): members only, the sender left out."""
    ids = {found[(chat_id, name)] for name in parsed.usernames if (chat_id, name) in found}
    ids.discard(sender_id)
    return tuple(sorted(ids))


def store(
    conn: Connection,
    rows: Iterable[tuple[int, int, tuple[int, ...]]],
    room: Iterable[tuple[int, int]],
) -> None:
    """rows: (chat, id, mentioned user ids); room: the (chat, id) of the
    messages that mention @room."""
    params = [
        {"user_id": user_id, "chat_id": chat_id, "seq": seq}
        for chat_id, seq, user_ids in rows
        for user_id in user_ids
    ]
    if params:
        _INSERT.many(conn, params)
    flags = [{"flag_chat_id": chat_id, "flag_seq": seq} for chat_id, seq in room]
    if flags:
        _MARK_ROOM.many(conn, flags)


_INSERT = FastStatement(sa.insert(mentions), columns=("user_id", "chat_id", "seq"))
_MARK_ROOM = FastStatement(
    sa.update(messages)
    .where(
        messages.c.chat_id == sa.bindparam("flag_chat_id"),
        messages.c.seq == sa.bindparam("flag_seq"),
    )
    .values(mentions_room=True)
)


def drop(conn: Connection, chat_id: int, seq: int) -> None:
    """A message's mentions, gone (a delete; an edit before it stores anew).
    The @room flag is the message's own column: its writer sets it."""
    conn.execute(sa.delete(mentions).where(mentions.c.chat_id == chat_id, mentions.c.seq == seq))


def replace(
    conn: Connection, chat_id: int, seq: int, user_ids: tuple[int, ...], room: bool
) -> None:
    """An edited message's mentions: as its new text says."""
    drop(conn, chat_id, seq)
    store(conn, [(chat_id, seq, user_ids)], [])
    conn.execute(
        sa.update(messages)
        .where(messages.c.chat_id == chat_id, messages.c.seq == seq)
        .values(mentions_room=room)
    )


def of_messages(
    conn: Connection, positions: Collection[tuple[int, int]]
) -> dict[tuple[int, int], tuple[int, ...]]:
    """(chat, id) -> the user ids it mentions, ascending; messages that
    mention nobody are left out."""
    if not positions:
        return {}
    params = {"chats": list({c for c, _ in positions}), "seqs": list({s for _, s in positions})}
    out: dict[tuple[int, int], list[int]] = {}
    for chat_id, seq, user_id in _OF_MESSAGES.all(conn, params):
        if (chat_id, seq) in positions:
            out.setdefault((chat_id, seq), []).append(user_id)
    return {key: tuple(ids) for key, ids in out.items()}


_OF_MESSAGES = FastStatement(
    sa.select(mentions.c.chat_id, mentions.c.seq, mentions.c.user_id)
    .where(
        mentions.c.chat_id.in_(sa.bindparam("chats", expanding=True)),
        mentions.c.seq.in_(sa.bindparam("seqs", expanding=True)),
    )
    .order_by(mentions.c.user_id),
    expanding=("chats", "seqs"),
)


def unread_counts(conn: Connection, user_id: int) -> dict[int, int]:
    """chat id -> how many messages after my read position mention me or
    @room (each counted once), not mine, not deleted; chats with none are
    left out. Both halves start from my memberships and walk an index from
    my read position in each chat: the mentions key (user, chat, id) and
    the partial index of @room messages (migration 0005)."""
    statement = _UNREAD[conn.dialect.name == "sqlite"]
    return {chat_id: count for chat_id, count in conn.execute(statement, {"user_id": user_id})}


# CROSS JOIN makes SQLite start from my memberships (else it reads every
# mention of me ever, then looks up each one's chat); PostgreSQL plans
# that by itself, and takes no ON after CROSS JOIN. The @room condition is
# word for word the partial index's: SQLite uses the index only then.
# UNION, not UNION ALL: a message that mentions me and @room counts once.
_UNREAD_SQL = """SELECT chat_id, count(*) FROM (
    SELECT n.chat_id, n.seq FROM members AS me {join} mentions AS n
        ON n.user_id = me.user_id AND n.chat_id = me.chat_id
        WHERE me.user_id = :user_id AND n.seq > me.last_read_seq
    UNION
    SELECT messages.chat_id, messages.seq FROM members AS me {join} messages
        ON messages.chat_id = me.chat_id
        WHERE me.user_id = :user_id AND messages.mentions_room
        AND messages.seq > me.last_read_seq AND messages.sender_id != :user_id
) AS unread GROUP BY chat_id"""
_UNREAD = {
    sqlite: sa.text(_UNREAD_SQL.format(join="CROSS JOIN" if sqlite else "JOIN"))
    for sqlite in (False, True)
}
