"""Room admin by its owner (the creator): rename, set the topic, remove a
member. Each goes through the worker, so every server process learns of it.

The request side (`Rooms`: input rules and rate limits, then a command)
and the rules the worker applies (`handle_*`, in its transaction) are both
here: only a member learns the room exists (NOT_FOUND otherwise), a
personal conversation has no admin (FAILED_PRECONDITION), only the owner
acts (PERMISSION_DENIED)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import Caller, Chat, ChatKind
from crab.core.domain.validation import clean_room_name, clean_topic
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.request_ids import request_id
from crab.core.storage import chats, users
from crab.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


class Rooms:
    def __init__(self, broker: Broker, limits: Limits) -> None:
        self._broker = broker
        self._renames = RateLimiter.of(limits.renames_per_user, "room renames by you")
        self._topics = RateLimiter.of(limits.topics_per_user, "topic changes by you")
        self._removals = RateLimiter.of(limits.removals_per_user, "members removed by you")

    # `request`: the client's request id; a retry with it gets the first answer.

    async def rename(self, caller: Caller, chat_id: int, name: str, request: str = "") -> Chat:
        command = cmd.RenameRoom(
            caller.user_id, chat_id, clean_room_name(name), request_id(request)
        )
        self._renames.take(caller.user_id)  # after the checks: a typo costs nothing
        return await self._broker.request(command)

    async def set_topic(self, caller: Caller, chat_id: int, topic: str, request: str = "") -> Chat:
        command = cmd.SetTopic(caller.user_id, chat_id, clean_topic(topic), request_id(request))
        self._topics.take(caller.user_id)
        return await self._broker.request(command)

    async def remove_member(
        self, caller: Caller, chat_id: int, user_id: int, request: str = ""
    ) -> None:
        if user_id == caller.user_id:
            raise InvalidArgument("you cannot remove yourself; leave the room instead")
        command = cmd.RemoveMember(caller.user_id, chat_id, user_id, request_id(request))
        self._removals.take(caller.user_id)
        await self._broker.request(command)


# ---- the worker's handlers ---------------------------------------------------


def _owned(conn: Connection, chat_id: int, user_id: int) -> Chat:
    """The room, if `user_id` owns it; else the refusal the rules say."""
    chat = chats.get(conn, chat_id)
    if chat is None or not chats.is_member(conn, chat_id, user_id):
        raise NotFound(f"chat {chat_id} not found")
    if chat.kind != ChatKind.ROOM:
        raise FailedPrecondition("a personal conversation has no owner to change it")
    if chat.owner_id != user_id:
        raise PermissionDenied("only the room's owner can do that")
    return chat


def _updated(conn: Connection, chat_id: int, out: ev.Published) -> Chat:
    chat = chats.get(conn, chat_id)
    assert chat is not None
    out.append((ev.chat_topic(chat_id), ev.ChatUpdated(chat)))
    return chat


def handle_rename(conn: Connection, c: cmd.RenameRoom, out: ev.Published) -> Chat:
    _owned(conn, c.chat_id, c.user_id)
    chats.rename(conn, c.chat_id, c.name)
    return _updated(conn, c.chat_id, out)


def handle_set_topic(conn: Connection, c: cmd.SetTopic, out: ev.Published) -> Chat:
    _owned(conn, c.chat_id, c.user_id)
    chats.set_topic(conn, c.chat_id, c.topic)
    return _updated(conn, c.chat_id, out)


def handle_remove_member(conn: Connection, c: cmd.RemoveMember, out: ev.Published) -> None:
    _owned(conn, c.chat_id, c.user_id)
    if c.member_id == c.user_id:
        raise InvalidArgument("you cannot remove yourself; leave the room instead")
    removed = users.by_id(conn, c.member_id)
    if removed is None or not chats.remove_member(conn, c.chat_id, c.member_id):
        raise NotFound(f"user {c.member_id} is not a member of this room")
    owner = users.by_id(conn, c.user_id)
    assert owner is not None
    # Their streams stop following the chat (as on leaving); the others see who and by whom.
    out.append((ev.user_topic(c.member_id), ev.ChatLeft(c.member_id, c.chat_id)))
    out.append((ev.chat_topic(c.chat_id), ev.MemberRemoved(c.chat_id, removed, owner)))
