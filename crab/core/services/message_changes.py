"""Changing a message after it was sent: edit, delete, react; and reading
the changes of a chat after a change number (docs/conversation.md).

The request side (`MessageChanges`: input rules and a rate limit, then a
command to the worker) and the worker's handlers (`handle_*`: sync
functions of its connection, run in its transaction) are both here.

Rules: only members see a chat (anyone else: NOT_FOUND, as for a chat that
does not exist); I edit only my own message, and not once it is deleted; I
delete my own, or any message of a room I own (a direct chat has no
owner); any member toggles a reaction, at most MAX_EMOJIS_PER_MESSAGE
distinct emojis on a message. Each change takes the chat's next change
number, is stored with the message, and is published as the message as it
is now (ev.MessageChanged)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.mentions import parse_mentions
from crab.core.domain.models import Caller, Message, MessagePage
from crab.core.domain.validation import (
    MAX_EMOJIS_PER_MESSAGE,
    check_emoji,
    check_message_text,
    clamp_id,
)
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.request_ids import request_id
from crab.core.storage import chats, message_changes, messages
from crab.core.storage import mentions as mention_store
from crab.core.storage.database import Database
from crab.core.storage.message_changes import Target
from crab.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

CHANGES_PAGE_DEFAULT = 200
CHANGES_PAGE_MAX = 500


class MessageChanges:
    def __init__(self, database: Database, broker: Broker, limits: Limits) -> None:
        self._database = database
        self._broker = broker
        self._limits = limits
        self._by_user = RateLimiter.of(
            limits.changes_per_user, "edits, deletes and reactions by you"
        )

    # `request`: the client's request id; a retry with it gets the first answer.

    async def edit(
        self, caller: Caller, chat_id: int, message_id: int, text: str, request: str = ""
    ) -> Message:
        check_message_text(text, self._limits.max_message_chars)
        command = cmd.EditMessage(
            caller.user_id, chat_id, clamp_id(message_id), text, request_id(request)
        )
        self._by_user.take(caller.user_id)
        return await self._broker.request(command)

    async def delete(
        self, caller: Caller, chat_id: int, message_id: int, request: str = ""
    ) -> Message:
        command = cmd.DeleteMessage(
            caller.user_id, chat_id, clamp_id(message_id), request_id(request)
        )
        self._by_user.take(caller.user_id)
        return await self._broker.request(command)

    async def react(
        self, caller: Caller, chat_id: int, message_id: int, emoji: str, request: str = ""
    ) -> Message:
        check_emoji(emoji)
        command = cmd.React(
            caller.user_id, chat_id, clamp_id(message_id), emoji, request_id(request)
        )
        self._by_user.take(caller.user_id)
        return await self._broker.request(command)

    async def changes(
        self, caller: Caller, chat_id: int, after_change_seq: int, limit: int
    ) -> MessagePage:
        """The messages changed after `after_change_seq`, oldest change first
        (the order to apply them in; the next page is after the last one's
        change_seq)."""
        if limit > CHANGES_PAGE_MAX:
            raise InvalidArgument(f"limit must be at most {CHANGES_PAGE_MAX}")
        limit = limit or CHANGES_PAGE_DEFAULT
        return await self._database.read(
            _changes, caller.user_id, chat_id, clamp_id(after_change_seq), limit
        )


def _changes(conn: Connection, user_id: int, chat_id: int, after: int, limit: int) -> MessagePage:
    if chats.get_as_member(conn, chat_id, user_id) is None:
        raise NotFound(f"chat {chat_id} not found")
    found = messages.changes_after(conn, chat_id, after, limit + 1)
    return MessagePage(messages=found[:limit], has_more=len(found) > limit)


# ---- the worker's handlers ---------------------------------------------------


def _locked_target(
    conn: Connection, user_id: int, chat_id: int, message_id: int
) -> tuple[Target, int]:
    """The message to change and the change number it takes. The number
    is taken first: its row lock on the chat orders competing changes, so
    the target is read as the previous change left it. A rule broken
    after this rolls the number back with the transaction."""
    if not chats.is_member(conn, chat_id, user_id):
        raise NotFound(f"chat {chat_id} not found")
    change_seq = message_changes.next_change_seq(conn, chat_id)
    found = message_changes.target(conn, chat_id, message_id)
    if found is None:
        raise NotFound(f"message {message_id} not found in chat {chat_id}")
    return found, change_seq


def _changed(conn: Connection, chat_id: int, message_id: int, out: ev.Published) -> Message:
    message = messages.one(conn, chat_id, message_id)
    assert message is not None
    out.append((ev.chat_topic(chat_id), ev.MessageChanged(message)))
    return message


def handle_edit(conn: Connection, c: cmd.EditMessage, out: ev.Published) -> Message:
    found, change_seq = _locked_target(conn, c.user_id, c.chat_id, c.message_id)
    if found.sender_id != c.user_id:
        raise PermissionDenied("you can edit only your own messages")
    if found.deleted:
        raise FailedPrecondition("a deleted message cannot be edited")
    if found.call_note:
        raise FailedPrecondition("a call's line cannot be edited")
    message_changes.edit(conn, found.row_id, c.text, change_seq, now())
    # The new text's mentions replace the old (members of the chat now).
    said = parse_mentions(c.text)
    named = mention_store.members_named(conn, {c.chat_id: said.usernames} if said.usernames else {})
    user_ids = mention_store.resolve(named, c.chat_id, c.user_id, said)
    mention_store.replace(conn, c.chat_id, c.message_id, user_ids, said.room)
    return _changed(conn, c.chat_id, c.message_id, out)


def handle_delete(conn: Connection, c: cmd.DeleteMessage, out: ev.Published) -> Message:
    found, change_seq = _locked_target(conn, c.user_id, c.chat_id, c.message_id)
    if c.user_id not in (found.sender_id, found.owner_id):
        raise PermissionDenied("you can delete only your own messages (or any, in a room you own)")
    if found.deleted:
        raise FailedPrecondition("this message is already deleted")
    message_changes.delete(conn, found.row_id, change_seq, now())
    mention_store.drop(conn, c.chat_id, c.message_id)
    return _changed(conn, c.chat_id, c.message_id, out)


def handle_react(conn: Connection, c: cmd.React, out: ev.Published) -> Message:
    found, change_seq = _locked_target(conn, c.user_id, c.chat_id, c.message_id)
    if found.deleted:
        raise FailedPrecondition("a deleted message cannot take reactions")
    if message_changes.has_reacted(conn, found.row_id, c.user_id, c.emoji):
        message_changes.remove_reaction(conn, found.row_id, c.user_id, c.emoji)
    else:
        present = message_changes.emojis(conn, found.row_id)
        if c.emoji not in present and len(present) >= MAX_EMOJIS_PER_MESSAGE:
            raise FailedPrecondition(
                f"a message takes at most {MAX_EMOJIS_PER_MESSAGE} different emojis"
            )
        message_changes.add_reaction(conn, found.row_id, c.user_id, c.emoji, now())
    message_changes.mark_changed(conn, found.row_id, change_seq)
    return _changed(conn, c.chat_id, c.message_id, out)
