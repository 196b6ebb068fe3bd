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
from crab.core.domain.models import Caller, Chat, ChatKind, ChatSummary, MessagePage, User
from crab.core.domain.validation import clamp_id, clean_room_name
from crab.core.services.rate_limit import RateLimiter, take_all
from crab.core.services.request_ids import request_id
from crab.core.services.rooms import Rooms
from crab.core.storage import chats, messages, users
from crab.core.storage.database import Database
from crab.errors import InvalidArgument, NotFound


class Chats:
    def __init__(self, database: Database, broker: Broker, limits: Limits) -> None:
        self._database = database
        self._broker = broker
        self._limits = limits
        self._rooms_by_user = RateLimiter.of(limits.rooms_per_user, "rooms created by you")
        self._rooms_by_address = RateLimiter.of(
            limits.rooms_per_address, "rooms created from your address"
        )
        self.rooms = Rooms(broker, limits)  # the owner's rename, topic, removal

    async def mine(self, caller: Caller) -> list[ChatSummary]:
        return await self._database.read(chats.summaries, caller.user_id)

    async def get(self, caller: Caller, chat_id: int) -> tuple[Chat, list[User]]:
        return await self._database.read(_chat_and_members, caller.user_id, chat_id)

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
        """Only the reader sees their read position, so no broker round trip."""
        await self._database.write(_mark_read, caller.user_id, chat_id, clamp_id(message_id))


def _visible(conn: Connection, user_id: int, chat_id: int) -> Chat:
    """The chat, if the user is a member. Otherwise NotFound, the same
    answer as for a chat that does not exist: outsiders learn nothing."""
    chat = chats.get_as_member(conn, chat_id, user_id)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found")
    return chat


def _chat_and_members(conn: Connection, user_id: int, chat_id: int) -> tuple[Chat, list[User]]:
    chat = _visible(conn, user_id, chat_id)
    return chats.view(conn, chat, user_id), chats.member_users(conn, chat_id)


def _mark_read(conn: Connection, user_id: int, chat_id: int, message_id: int) -> None:
    _visible(conn, user_id, chat_id)
    chats.mark_read(conn, chat_id, user_id, message_id)


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
