"""One chat's history as JSON lines (`crab export CHAT --format jsonl`):
a record per message, oldest first, each as it is now (edited text, a
tombstone for a deleted one, the id it replies to, its reactions). Read
in pages through the storage layer, so a chat of any length streams in
fixed memory, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import Chat, ChatKind, Message
from crab.core.storage import chats as chat_store
from crab.core.storage import messages as message_store
from crab.core.storage import users as user_store
from crab.core.storage.database import Database
from crab.core.storage.tables import chats

EXPORT_PAGE = 500  # messages read at once
# Characters json.dumps leaves as they are (ensure_ascii=False) that many
# line readers (Python's splitlines, JavaScript) take for line ends:
# escaped, a record stays one line whatever its text holds.
_LINE_BREAKERS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class ExportError(Exception):
    """No such chat, or a name that fits several; the message says which."""


def find_chat(conn: Connection, chat: str) -> Chat:
    """A chat by its id, or a room by its exact name."""
    if chat.isdigit():
        found = chat_store.get(conn, int(chat))
        if found is None:
            raise ExportError(f"no chat with id {chat}")
        return found
    rows = conn.execute(
        sa.select(*chat_store.CHAT_COLUMNS)
        .where(chats.c.kind == int(ChatKind.ROOM), chats.c.name == chat)
        .order_by(chats.c.id)
    ).all()
    if not rows:
        raise ExportError(f"no room named {chat!r} (give a chat id or a room's exact name)")
    if len(rows) > 1:
        ids = ", ".join(str(r.id) for r in rows)
        raise ExportError(f"{len(rows)} rooms are named {chat!r} (ids {ids}): give the chat id")
    return chat_store.to_chat(rows[0])


def _time(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record(message: Message, usernames: dict[int, str]) -> dict[str, Any]:
    """A message as one JSON object; `usernames`: who reacted, by id."""
    return {
        "chat_id": message.chat_id,
        "id": message.id,
        "sent_at": _time(message.sent_at),
        "sender": {
            "id": message.sender.id,
            "username": message.sender.username,
            "display_name": message.sender.display_name,
        },
        "text": message.text,
        "edited_at": _time(message.edited_at),
        "deleted": message.deleted,
        "reply_to": message.reply_to.message_id if message.reply_to else None,
        "reactions": [
            {"emoji": r.emoji, "users": [usernames.get(u, str(u)) for u in r.user_ids]}
            for r in message.reactions
        ],
    }


def _page(conn: Connection, chat_id: int, after: int) -> tuple[list[Message], dict[int, str]]:
    found = message_store.after(conn, chat_id, after, EXPORT_PAGE)
    reactors = {u for m in found for r in m.reactions for u in r.user_ids}
    people = user_store.by_ids(conn, reactors) if reactors else {}
    return found, {i: p.username for i, p in people.items()}


async def chat_lines(database: Database, chat_id: int) -> AsyncIterator[str]:
    """The chat's messages as JSON lines (each ending in a newline), oldest first."""
    after = 0
    while True:
        found, usernames = await database.read(_page, chat_id, after)
        for message in found:
            text = json.dumps(record(message, usernames), ensure_ascii=False)
            yield text.translate(_LINE_BREAKERS) + "\n"
        if len(found) < EXPORT_PAGE:
            return
        after = found[-1].id


__all__ = ["EXPORT_PAGE", "ExportError", "chat_lines", "find_chat", "record"]
