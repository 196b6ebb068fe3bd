"""The worker owns every write others must see: it stores, answers the
requester, then publishes events. Handlers are idempotent, because a
command whose worker died before acknowledging is delivered again: a send
by its client message id, every other command by its request id, under
which its first result is stored in the transaction that acted.

Each command's failure is its own: an unexpected error in one (a bug, a
malformed command) becomes that command's error outcome, never the
batch's. While the database is away, commands are tried again with
backoff (outages.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.engine import Connection

from crab.core.broker import codec
from crab.core.broker.base import Broker, Outcome
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import Chat, ChatKind, Invite, InviteAnswer, Message
from crab.core.storage import chats, command_results, invites, users
from crab.core.storage.database import Database
from crab.core.storage.failures import as_crab_error, short
from crab.core.worker.outages import DatabaseOutage
from crab.core.worker.sends import store_sends
from crab.errors import (
    AlreadyExists,
    Conflict,
    CrabError,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
)

log = logging.getLogger(__name__)

Published = list[tuple[str, ev.Event]]

OUTAGE_WAIT = 10.0  # seconds a command is retried while the database is away
PURGE_EVERY = 600.0  # seconds between two purges of old command results
FAILED = "the server could not handle this command"


class Worker:
    def __init__(
        self, database: Database, broker: Broker, outage_wait: float = OUTAGE_WAIT
    ) -> None:
        self._database = database
        self._broker = broker
        self._outage = DatabaseOutage(outage_wait)
        self._next_purge = 0.0  # loop time

    async def start(self, consumers: int) -> None:
        for _ in range(consumers):
            await self._broker.consume(self.handle)

    async def handle(self, batch: Sequence[cmd.Command]) -> list[Outcome]:
        """One outcome per command. Raises only when events or replies
        cannot be published (the broker is away): the batch is then
        delivered again, and its commands find their first results."""
        outcomes: list[Outcome | None] = [None] * len(batch)
        sends = [(i, c) for i, c in enumerate(batch) if isinstance(c, cmd.SendMessage)]
        if sends:
            for (i, _), outcome in zip(sends, await self._send_group(sends), strict=True):
                outcomes[i] = outcome
        for i, command in enumerate(batch):
            if outcomes[i] is None:
                outcomes[i] = await self._one(command)
        await self._purge_now_and_then()
        return [o for o in outcomes if o is not None]

    async def _one(self, command: cmd.Command) -> Outcome:
        """One command in its own transaction; whatever goes wrong is its own."""
        published: Published = []
        try:
            outcome = await self._outage.retrying(lambda: self._attempt(command, published))
        except Conflict as exc:  # a second conflict: not for this command to explain
            return Outcome(error=_unexpected(exc, type(command).__name__))
        except CrabError as error:  # the database stayed away
            return Outcome(error=error)
        except Exception as exc:
            return Outcome(error=_unexpected(exc, type(command).__name__))
        await self._publish(published)
        return outcome

    async def _attempt(
        self, command: cmd.Command, published: Published, retry: bool = True
    ) -> Outcome:
        published.clear()
        try:
            result = await self._database.write(_idempotent, command, published)
        except Conflict:
            if not retry:
                raise
            # A competing worker committed the same unique key (a pending
            # invite, a direct chat, a client message id, a request id)
            # between our check and our insert: once more, the check sees it.
            return await self._attempt(command, published, retry=False)
        except CrabError as error:
            published.clear()
            return Outcome(error=error)
        return Outcome(result=result)

    async def _publish(self, published: Published) -> None:
        for topic, event in published:
            await self._broker.publish(topic, event)

    async def _purge_now_and_then(self) -> None:
        """Results older than a day go, at most every PURGE_EVERY seconds
        (one indexed delete): a retry comes within seconds, not days."""
        loop_now = asyncio.get_running_loop().time()
        if loop_now < self._next_purge:
            return
        self._next_purge = loop_now + PURGE_EVERY
        older_than = now() - timedelta(seconds=command_results.KEEP_FOR_SECONDS)
        try:
            gone = await self._database.write(command_results.purge, older_than)
        except Exception as exc:
            log.warning("old command results not purged: %s", short(exc))
            return
        if gone:
            log.info("purged %d command results older than a day", gone)

    async def _send_group(self, sends: list[tuple[int, cmd.SendMessage]]) -> list[Outcome]:
        """All waiting sends in one transaction, one call to the database:
        one commit for the lot, then each is answered. If the group fails
        (a conflict, or a send that breaks it), each is tried alone."""
        commands = [c for _, c in sends]
        try:
            stored = await self._outage.retrying(
                lambda: self._database.write(store_sends, commands)
            )
        except Conflict:
            log.info("group of %d sends conflicted; storing one by one", len(sends))
            return [await self._one(c) for c in commands]
        except CrabError as away:  # the database stayed away
            return [Outcome(error=away) for _ in commands]
        except Exception as exc:
            full = as_crab_error(exc)
            if full is not None:  # the disk is full: so it is for each of them
                return [Outcome(error=full) for _ in commands]
            log.warning("group of %d sends failed (%s); one by one", len(sends), short(exc))
            return [await self._one(c) for c in commands]
        await self._publish(stored.published)
        return stored.outcomes


def _idempotent(conn: Connection, command: cmd.Command, out: Published) -> object:
    """The command's first result if it was done before (publishing
    nothing), else the result of doing it now, stored with it."""
    key = _result_key(command)
    if key is None:
        return _dispatch(conn, command, out)
    stored = command_results.find(conn, key)
    if stored is not None:
        return codec.decode_outcome(stored).result
    result = _dispatch(conn, command, out)
    encoded = codec.encode_outcome(Outcome(result=result))
    command_results.insert(conn, key, encoded, now())
    return result


def _dispatch(conn: Connection, command: cmd.Command, out: Published) -> object:
    match command:
        case cmd.SendMessage():
            return _send_one(conn, command, out)
        case cmd.CreateRoom():
            return _create_room(conn, command, out)
        case cmd.LeaveChat():
            _leave(conn, command, out)
            return None
        case cmd.InviteToRoom():
            return _invite_to_room(conn, command, out)
        case cmd.InviteToDirect():
            return _invite_to_direct(conn, command, out)
        case cmd.AnswerInvite():
            return _answer(conn, command, out)
    raise TypeError(f"unknown command {command!r}")


def _send_one(conn: Connection, command: cmd.SendMessage, out: Published) -> Message:
    stored = store_sends(conn, [command])
    (outcome,) = stored.outcomes
    if outcome.error is not None:
        raise outcome.error
    assert isinstance(outcome.result, Message)
    out.extend(stored.published)
    return outcome.result


def _create_room(conn: Connection, c: cmd.CreateRoom, out: Published) -> Chat:
    chat = chats.create(conn, ChatKind.ROOM, c.name, c.creator_id, now())
    chats.add_member(conn, chat.id, c.creator_id, now())
    out.append((ev.user_topic(c.creator_id), ev.ChatJoined(c.creator_id, chat)))
    return chat


def _leave(conn: Connection, c: cmd.LeaveChat, out: Published) -> None:
    if not chats.remove_member(conn, c.chat_id, c.user_id):
        raise NotFound(f"chat {c.chat_id} not found")
    user = users.by_id(conn, c.user_id)
    assert user is not None
    out.append((ev.user_topic(c.user_id), ev.ChatLeft(c.user_id, c.chat_id)))
    out.append((ev.chat_topic(c.chat_id), ev.MemberLeft(c.chat_id, user)))


def _invitee(conn: Connection, inviter_id: int, invitee_id: int) -> None:
    if invitee_id == inviter_id:
        raise FailedPrecondition("you cannot invite yourself")
    if users.by_id(conn, invitee_id) is None:
        raise NotFound(f"user {invitee_id} not found")


def _invite_to_room(conn: Connection, c: cmd.InviteToRoom, out: Published) -> Invite:
    chat = chats.get(conn, c.chat_id)
    if chat is None or not chats.is_member(conn, c.chat_id, c.inviter_id):
        raise NotFound(f"chat {c.chat_id} not found")
    if chat.kind != ChatKind.ROOM:
        raise FailedPrecondition("a personal conversation has exactly two people; create a room")
    _invitee(conn, c.inviter_id, c.invitee_id)
    if chats.is_member(conn, c.chat_id, c.invitee_id):
        raise AlreadyExists("that user is already a member of this room")
    return _store_invite(
        conn, c.inviter_id, c.invitee_id, chat.id, invites.room_key(chat.id, c.invitee_id), out
    )


def _invite_to_direct(conn: Connection, c: cmd.InviteToDirect, out: Published) -> Invite:
    _invitee(conn, c.inviter_id, c.invitee_id)
    existing = chats.direct_between(conn, c.inviter_id, c.invitee_id)
    if existing is not None and set(chats.member_ids(conn, existing.id)) == {
        c.inviter_id,
        c.invitee_id,
    }:
        raise AlreadyExists("you already have a personal conversation with that user")
    key = invites.direct_key(c.inviter_id, c.invitee_id)
    return _store_invite(conn, c.inviter_id, c.invitee_id, None, key, out)


def _store_invite(
    conn: Connection,
    inviter_id: int,
    invitee_id: int,
    chat_id: int | None,
    key: str,
    out: Published,
) -> Invite:
    if invites.key_taken(conn, key):
        raise AlreadyExists("there is already a pending invite for that")
    invite_id = invites.insert(conn, inviter_id, invitee_id, chat_id, key, now())
    invite = invites.get(conn, invite_id)
    assert invite is not None
    out.append((ev.user_topic(invitee_id), ev.InviteReceived(invite)))
    return invite


def _answer(conn: Connection, c: cmd.AnswerInvite, out: Published) -> InviteAnswer:
    invite = invites.get(conn, c.invite_id)
    if invite is None or c.user_id not in (invite.invitee.id, invite.inviter.id):
        raise NotFound(f"invite {c.invite_id} not found")
    if invite.invitee.id != c.user_id:
        raise PermissionDenied("only the invited user can answer an invite")
    invites.delete(conn, invite.id)
    chat: Chat | None = None
    if c.accept:
        chat = _join(conn, invite, out)
    answer = InviteAnswer(invite=invite, accepted=c.accept, chat=chat)
    for user_id in {invite.inviter.id, invite.invitee.id}:
        out.append((ev.user_topic(user_id), ev.InviteAnswered(answer)))
    return answer


def _join(conn: Connection, invite: Invite, out: Published) -> Chat:
    """Accepting: the invitee (and for a direct chat, both) become members."""
    when = now()
    if invite.chat is not None:
        chat = chats.get(conn, invite.chat.id)
        if chat is None:
            raise NotFound("that room no longer exists")
        joining = [invite.invitee]
    else:
        pair = (invite.inviter.id, invite.invitee.id)
        found = chats.direct_between(conn, *pair)
        chat = found or chats.create(
            conn, ChatKind.DIRECT, "", invite.inviter.id, when, chats.direct_key(*pair)
        )
        joining = [invite.inviter, invite.invitee]
    newcomers = [u for u in joining if not chats.is_member(conn, chat.id, u.id)]
    for user in newcomers:
        chats.add_member(conn, chat.id, user.id, when)
    for user in newcomers:
        view = chats.view(conn, chat, user.id)
        out.append((ev.user_topic(user.id), ev.ChatJoined(user.id, view)))
        out.append((ev.chat_topic(chat.id), ev.MemberJoined(chat.id, user)))
    return chats.view(conn, chat, invite.invitee.id)


def _result_key(command: cmd.Command) -> str | None:
    """Where the command's first result is kept: per user, so nobody can
    read another's. None for sends (their client message id does it) and
    for commands from a producer that sent no request id."""
    match command:
        case cmd.CreateRoom(creator_id=user_id, request_id=request_id):
            pass
        case cmd.InviteToRoom(inviter_id=user_id, request_id=request_id):
            pass
        case cmd.InviteToDirect(inviter_id=user_id, request_id=request_id):
            pass
        case cmd.LeaveChat(user_id=user_id, request_id=request_id):
            pass
        case cmd.AnswerInvite(user_id=user_id, request_id=request_id):
            pass
        case _:
            return None
    return command_results.key(user_id, request_id) if request_id else None


def _unexpected(exc: Exception, what: str) -> CrabError:
    """An exception no handler expected: an outage's own error, else a bug,
    logged once in one line and answered to this command alone."""
    error = as_crab_error(exc)
    if error is None:
        log.error("%s failed: %s", what, short(exc))
        error = CrabError(FAILED)
    return error
