"""Chats: what I am in, what is in one, its history; creating and leaving
rooms go through the worker so every server process learns of them.

The request side (`Chats`) and the worker's handlers of its commands
(`handle_create_room`, `handle_leave`: sync functions of the worker's
connection, run in its transaction) are both here."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import (
    Caller,
    Chat,
    ChatDetails,
    ChatKind,
    ChatSummary,
    MessagePage,
    ReadPosition,
    User,
)
from crab.core.domain.validation import clamp_id, clean_room_name
from crab.core.services.coalesce import Coalescer
from crab.core.services.presence import PresenceBoard
from crab.core.services.rate_limit import RateLimiter, take_all
from crab.core.services.request_ids import request_id
from crab.core.services.rooms import Rooms
from crab.core.services.search import MessageSearch
from crab.core.storage import chats, messages, users
from crab.core.storage.database import Database
from crab.errors import InvalidArgument, NotFound

RECEIPT_SECONDS = 1.0  # at most one read receipt per chat and reader a second


class Chats:
    def __init__(
        self, database: Database, broker: Broker, limits: Limits, presence: PresenceBoard
    ) -> None:
        self._database = database
        self._broker = broker
        self._limits = limits
        self._presence = presence
        self._receipts: Coalescer[tuple[int, int], int] = Coalescer(
            RECEIPT_SECONDS, self._publish_receipt
        )
        self._rooms_by_user = RateLimiter.of(limits.rooms_per_user, "rooms created by you")
        self._reads_by_user = RateLimiter.of(
            limits.mark_reads_per_user, "read positions told by you"
        )
        self._rooms_by_address = RateLimiter.of(
            limits.rooms_per_address, "rooms created from your address"
        )
        self.rooms = Rooms(broker, limits)  # the owner's rename, topic, removal
        self.search = MessageSearch(database, limits)  # a read: no broker command

    async def mine(self, caller: Caller) -> list[ChatSummary]:
        return await self._database.read(chats.summaries, caller.user_id)

    async def get(self, caller: Caller, chat_id: int) -> ChatDetails:
        chat, members, read = await self._database.read(_chat_and_members, caller.user_id, chat_id)
        presence = await self._presence.presences([m.id for m in members])
        return ChatDetails(chat, members, presence, read)

    async def create_room(
        self, caller: Caller, name: str, request: str = "", source: str = ""
    ) -> Chat:
        """`request`: the client's request id; a retry with it gets the same room.
        `source`: the caller's address (rate limits per user and per address)."""
        command = cmd.CreateRoom(caller.user_id, clean_room_name(name), request_id(request))
        take_all((self._rooms_by_user, caller.user_id), (self._rooms_by_address, source))
        return await self._broker.request(command)

    async def leave(self, caller: Caller, chat_id: int) -> None:
        # No request id on the wire: one per call still makes a redelivery harmless.
        await self._broker.request(cmd.LeaveChat(caller.user_id, chat_id, request_id()))

    async def history(self, caller: Caller, chat_id: int, before: int, limit: int) -> MessagePage:
        if limit > self._limits.page_limit_max:
            raise InvalidArgument(f"limit must be at most {self._limits.page_limit_max}")
        limit = limit or self._limits.page_limit_default
        return await self._database.read(_page, caller.user_id, chat_id, clamp_id(before), limit)

    async def mark_read(self, caller: Caller, chat_id: int, message_id: int) -> None:
        """One direct write (no worker: only the reader changes it); when it
        moved forward, the other members hear of it through the chat's topic,
        coalesced (the newest position wins)."""
        self._reads_by_user.take(caller.user_id)
        moved = await self._database.write(
            _mark_read, caller.user_id, chat_id, clamp_id(message_id)
        )
        if moved is not None:
            await self._receipts.put((chat_id, caller.user_id), moved)

    async def _publish_receipt(self, key: tuple[int, int], last_read_id: int) -> None:
        chat_id, user_id = key
        await self._broker.publish(
            ev.chat_topic(chat_id), ev.ReadMoved(chat_id, user_id, last_read_id)
        )

    def close(self) -> None:
        self._receipts.close()


def _visible(conn: Connection, user_id: int, chat_id: int) -> Chat:
    """The chat, if the user is a member. Otherwise NotFound, the same
    answer as for a chat that does not exist: outsiders learn nothing."""
    chat = chats.get_as_member(conn, chat_id, user_id)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found")
    return chat


def _chat_and_members(
    conn: Connection, user_id: int, chat_id: int
) -> tuple[Chat, list[User], list[ReadPosition]]:
    chat = _visible(conn, user_id, chat_id)
    return (
        chats.view(conn, chat, user_id),
        chats.member_users(conn, chat_id),
        chats.read_positions(conn, chat_id),
    )


def _mark_read(conn: Connection, user_id: int, chat_id: int, message_id: int) -> int | None:
    _visible(conn, user_id, chat_id)
    return chats.mark_read(conn, chat_id, user_id, message_id)


def _page(conn: Connection, user_id: int, chat_id: int, before: int, limit: int) -> MessagePage:
    """A page of history, for members only: one unit of work."""
    _visible(conn, user_id, chat_id)
    return messages.page(conn, chat_id, before, limit)


# ---- the worker's handlers ---------------------------------------------------


def handle_create_room(conn: Connection, c: cmd.CreateRoom, out: ev.Published) -> Chat:
    chat = chats.create(conn, ChatKind.ROOM, c.name, c.creator_id, now())
    chats.add_member(conn, chat.id, c.creator_id, now())
    out.append((ev.user_topic(c.creator_id), ev.ChatJoined(c.creator_id, chat)))
    return chat


def handle_leave(conn: Connection, c: cmd.LeaveChat, out: ev.Published) -> None:
    if not chats.remove_member(conn, c.chat_id, c.user_id):
        raise NotFound(f"chat {c.chat_id} not found")
    user = users.by_id(conn, c.user_id)
    assert user is not None
    out.append((ev.user_topic(c.user_id), ev.ChatLeft(c.user_id, c.chat_id)))
    out.append((ev.chat_topic(c.chat_id), ev.MemberLeft(c.chat_id, user)))
