"""Messages: stored once per (sender, client message id), numbered
gap-free within their chat.

Every reader returns messages as they are now: edited text and time, a
tombstone for a deleted one, the quote of the message replied to, and the
reactions. A page costs one query, plus one for the quotes if any message
in it replies, one for the reactions if any was changed (reactions only
exist on a message whose change_seq is set) and one for the mentions if
any text holds an '@': never a query per message."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import Message, MessagePage, Reaction, ReplyQuote, User
from crab.core.storage import mentions as mention_store
from crab.core.storage.fast_statements import FastStatement
from crab.core.storage.tables import chats, members, messages, reactions, users

QUOTE_CHARS = 80  # the start of a replied-to message shown in a reply

_COLUMNS = (
    messages.c.chat_id,
    messages.c.seq,
    messages.c.text,
    messages.c.created_at,
    messages.c.client_message_id,
    messages.c.reply_to_seq,
    messages.c.edited_at,
    # 1 for a tombstone: an integer needs no conversion per row (a time does).
    sa.case((messages.c.deleted_at.is_(None), 0), else_=1).label("deleted"),
    messages.c.change_seq,
    # An integer, like "deleted": SQLite's Boolean would convert every row.
    sa.type_coerce(messages.c.mentions_room, sa.Integer).label("mentions_room"),
    users.c.id.label("sender_id"),
    users.c.username,
    users.c.display_name,
)


def _select() -> sa.Select[Any]:
    return sa.select(*_COLUMNS).join(users, users.c.id == messages.c.sender_id)


def _to_messages(conn: Connection, rows: Iterable[Any]) -> list[Message]:
    """Rows of _COLUMNS as messages. Unpacked by position and each sender
    built once: named access on a Row made this ~2/3 of a history page's
    time in the database thread. Quotes and reactions are read for the
    whole lot at once, and only when some message has them."""
    senders: dict[int, User] = {}
    out = []
    replies: dict[int, int] = {}  # index in out -> the id it replies to
    changed: list[int] = []  # indexes of changed, not deleted, messages
    mentioning: list[int] = []  # indexes of messages that may mention someone
    for (
        chat_id,
        seq,
        text,
        created_at,
        client_message_id,
        reply_to_seq,
        edited_at,
        deleted,
        change_seq,
        room,
        sender_id,
        username,
        name,
    ) in rows:
        sender = senders.get(sender_id)
        if sender is None:
            sender = senders[sender_id] = User(sender_id, username, name)
        # Mention rows exist only for a text with an '@' (storage/mentions.py).
        at = "@" in text
        if reply_to_seq is None and not change_seq and not at:  # a plain message: the hot case
            out.append(Message(chat_id, seq, sender, text, created_at, client_message_id))
            continue
        if reply_to_seq is not None:
            replies[len(out)] = reply_to_seq
        if change_seq and not deleted:
            changed.append(len(out))
        if at:
            mentioning.append(len(out))
        out.append(
            Message(
                chat_id,
                seq,
                sender,
                text,
                created_at,
                client_message_id,
                edited_at=edited_at,
                deleted=bool(deleted),
                change_seq=change_seq,
                mentions_room=bool(room),
            )
        )
    if replies or changed or mentioning:
        _complete(conn, out, replies, changed, mentioning)
    return out


def _complete(
    conn: Connection,
    out: list[Message],
    replies: dict[int, int],
    changed: list[int],
    mentioning: list[int],
) -> None:
    found = quotes(conn, {(out[i].chat_id, seq) for i, seq in replies.items()})
    for i, seq in replies.items():
        out[i] = dataclasses.replace(out[i], reply_to=found.get((out[i].chat_id, seq)))
    grouped = reactions_of(conn, {(out[i].chat_id, out[i].id) for i in changed})
    for i in changed:
        got = grouped.get((out[i].chat_id, out[i].id))
        if got:
            out[i] = dataclasses.replace(out[i], reactions=got)
    mentioned = mention_store.of_messages(conn, {(out[i].chat_id, out[i].id) for i in mentioning})
    for i in mentioning:
        ids = mentioned.get((out[i].chat_id, out[i].id))
        if ids:
            out[i] = dataclasses.replace(out[i], mention_user_ids=ids)


def quotes(
    conn: Connection, positions: Collection[tuple[int, int]]
) -> dict[tuple[int, int], ReplyQuote]:
    """(chat, id) -> a one-line quote of that message as it is now; missing
    positions are left out (a reply checks its target with this)."""
    if not positions:
        return {}
    params = {"chats": list({c for c, _ in positions}), "seqs": list({s for _, s in positions})}
    out = {}
    for chat_id, seq, start, deleted_at, sender_id, username, name in _QUOTES.all(conn, params):
        if (chat_id, seq) in positions:
            deleted = deleted_at is not None
            sender = User(sender_id, username, name)
            out[(chat_id, seq)] = ReplyQuote(seq, sender, "" if deleted else start, deleted)
    return out


# Two INs and the pairs sorted out above (see _BY_CLIENT_IDS for why).
_QUOTES = FastStatement(
    sa.select(
        messages.c.chat_id,
        messages.c.seq,
        sa.func.substr(messages.c.text, 1, QUOTE_CHARS),
        messages.c.deleted_at,
        users.c.id,
        users.c.username,
        users.c.display_name,
    )
    .join(users, users.c.id == messages.c.sender_id)
    .where(
        messages.c.chat_id.in_(sa.bindparam("chats", expanding=True)),
        messages.c.seq.in_(sa.bindparam("seqs", expanding=True)),
    ),
    expanding=("chats", "seqs"),
)


def reactions_of(
    conn: Connection, positions: Collection[tuple[int, int]]
) -> dict[tuple[int, int], tuple[Reaction, ...]]:
    """(chat, id) -> its reactions, grouped by emoji in the order each was
    first used, the users of each in the order they reacted."""
    if not positions:
        return {}
    params = {"chats": list({c for c, _ in positions}), "seqs": list({s for _, s in positions})}
    by_message: dict[tuple[int, int], dict[str, list[int]]] = {}
    for chat_id, seq, emoji, user_id in _REACTIONS.all(conn, params):
        if (chat_id, seq) in positions:
            by_message.setdefault((chat_id, seq), {}).setdefault(emoji, []).append(user_id)
    return {
        key: tuple(Reaction(emoji, tuple(who)) for emoji, who in emojis.items())
        for key, emojis in by_message.items()
    }


_REACTIONS = FastStatement(
    sa.select(messages.c.chat_id, messages.c.seq, reactions.c.emoji, reactions.c.user_id)
    .join(reactions, reactions.c.message_id == messages.c.id)
    .where(
        messages.c.chat_id.in_(sa.bindparam("chats", expanding=True)),
        messages.c.seq.in_(sa.bindparam("seqs", expanding=True)),
    )
    .order_by(reactions.c.created_at, reactions.c.user_id, reactions.c.emoji),
    expanding=("chats", "seqs"),
)


def by_client_ids(
    conn: Connection, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], Message]:
    """The messages already stored under these (sender, client message id)
    keys: a worker's whole group checked for re-sends in one query."""
    if not keys:
        return {}
    wanted = set(keys)
    params = {"senders": list({k[0] for k in wanted}), "ids": list({k[1] for k in wanted})}
    found = _to_messages(conn, _BY_CLIENT_IDS.all(conn, params))
    return {key: m for m in found if (key := (m.sender.id, m.client_message_id)) in wanted}


# Two INs, not one IN of (sender, id) pairs: SQLite runs a row-value IN of
# several pairs as a SCAN of the whole table (~0.3 s per group at 1,000,000
# messages); this uses the unique index. Pairs not asked for are dropped above.
_BY_CLIENT_IDS = FastStatement(
    _select().where(
        messages.c.sender_id.in_(sa.bindparam("senders", expanding=True)),
        messages.c.client_message_id.in_(sa.bindparam("ids", expanding=True)),
    ),
    expanding=("senders", "ids"),
)


def next_seqs(conn: Connection, chat_id: int, count: int) -> int:
    """Reserves `count` ids in the chat and returns the first. The row lock
    on the chat serialises writers, which keeps ids gap-free."""
    ((last,),) = _NEXT_SEQS.all(conn, {"chat_id": chat_id, "count": count})
    return int(last) - count + 1


_NEXT_SEQS = FastStatement(
    sa.update(chats)
    .where(chats.c.id == sa.bindparam("chat_id"))
    .values(last_seq=chats.c.last_seq + sa.bindparam("count"))
    .returning(chats.c.last_seq)
)


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Core executemany: one round trip for the lot (ORM add_all is 30x slower)."""
    if rows:
        _INSERT.many(conn, rows)


_INSERT = FastStatement(
    sa.insert(messages),
    columns=(
        "chat_id",
        "seq",
        "sender_id",
        "client_message_id",
        "text",
        "created_at",
        "reply_to_seq",
    ),
)


_MARK_READ = FastStatement(
    sa.update(members)
    .where(
        members.c.chat_id == sa.bindparam("read_chat_id"),
        members.c.user_id == sa.bindparam("read_user_id"),
        members.c.last_read_seq < sa.bindparam("read_seq"),
    )
    .values(last_read_seq=sa.bindparam("read_seq"))
)


def mark_senders_read(conn: Connection, newest: dict[tuple[int, int], int]) -> None:
    """Your own message is never unread to you: (chat, sender) -> the newest
    id they sent, for a whole group in one round trip (executemany)."""
    if newest:
        params = [
            {"read_chat_id": chat_id, "read_user_id": user_id, "read_seq": seq}
            for (chat_id, user_id), seq in newest.items()
        ]
        _MARK_READ.many(conn, params)


def row(
    chat_id: int,
    seq: int,
    sender_id: int,
    client_message_id: str,
    text: str,
    now: datetime,
    reply_to_seq: int | None = None,
) -> dict[str, Any]:
    return {
        "chat_id": chat_id,
        "seq": seq,
        "sender_id": sender_id,
        "client_message_id": client_message_id,
        "text": text,
        "created_at": now,
        "reply_to_seq": reply_to_seq,
    }


def page(conn: Connection, chat_id: int, before: int, limit: int) -> MessagePage:
    """Up to `limit` messages older than `before` (0: from the newest), newest first."""
    params = {"chat_id": chat_id, "before": before, "limit": limit + 1}
    rows = (_PAGE_BEFORE if before else _PAGE).all(conn, params)
    found = _to_messages(conn, rows[:limit])
    return MessagePage(messages=found, has_more=len(rows) > limit)


_NEWEST = (
    _select()
    .where(messages.c.chat_id == sa.bindparam("chat_id"))
    .order_by(messages.c.seq.desc())
    .limit(sa.bindparam("limit"))
)
_PAGE = FastStatement(_NEWEST)
_PAGE_BEFORE = FastStatement(_NEWEST.where(messages.c.seq < sa.bindparam("before")))


def after(conn: Connection, chat_id: int, after_seq: int, limit: int) -> list[Message]:
    """Messages newer than `after_seq`, oldest first: what a client missed."""
    params = {"chat_id": chat_id, "after": after_seq, "limit": limit}
    return _to_messages(conn, _AFTER.all(conn, params))


_AFTER = FastStatement(
    _select()
    .where(messages.c.chat_id == sa.bindparam("chat_id"), messages.c.seq > sa.bindparam("after"))
    .order_by(messages.c.seq)
    .limit(sa.bindparam("limit"))
)


def last_messages(conn: Connection, last_seqs: dict[int, int]) -> dict[int, Message]:
    """The newest message of each chat, given each chat's newest id."""
    if not last_seqs:
        return {}
    wanted = [sa.and_(messages.c.chat_id == c, messages.c.seq == s) for c, s in last_seqs.items()]
    rows = conn.execute(_select().where(sa.or_(*wanted)))
    return {m.chat_id: m for m in _to_messages(conn, rows)}


def one(conn: Connection, chat_id: int, seq: int) -> Message | None:
    """The message as it is now."""
    return next(iter(_to_messages(conn, _ONE.all(conn, {"chat_id": chat_id, "seq": seq}))), None)


_ONE = FastStatement(
    _select().where(
        messages.c.chat_id == sa.bindparam("chat_id"), messages.c.seq == sa.bindparam("seq")
    )
)


def changes_after(
    conn: Connection, chat_id: int, after_change_seq: int, limit: int
) -> list[Message]:
    """The messages changed after `after_change_seq`, oldest change first,
    each as it is now (a message changed twice comes once, at its newest
    change): what a client missed of edits, deletes and reactions. One
    scan of the (chat_id, change_seq) index."""
    params = {"chat_id": chat_id, "after": after_change_seq, "limit": limit}
    return _to_messages(conn, _CHANGES_AFTER.all(conn, params))


_CHANGES_AFTER = FastStatement(
    _select()
    .where(
        messages.c.chat_id == sa.bindparam("chat_id"),
        messages.c.change_seq > sa.bindparam("after"),
    )
    .order_by(messages.c.change_seq)
    .limit(sa.bindparam("limit"))
)
