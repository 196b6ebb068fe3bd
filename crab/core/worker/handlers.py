"""The worker owns every write others must see: it stores, answers the
requester, then publishes events. This module is the machinery (batches,
idempotency, retries, publishing, outages); the rules of each command
live beside their service, one module per aggregate (services/chats.py,
invites.py, messages.py, message_changes.py), and `_dispatch` hands each command to its
handler there, inside the worker's transaction.

Handlers are idempotent, because a command whose worker died before
acknowledging is delivered again: a send by its client message id, every
other command by its request id, under which its first result is stored
in the transaction that acted.

Each command's failure is its own: an unexpected error in one (a bug, a
malformed command) becomes that command's error outcome, never the
batch's. While the database is away, commands are tried again with
backoff (outages.py)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.engine import Connection

from crab.core import metrics
from crab.core.broker import codec
from crab.core.broker.base import Broker, Outcome
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.services import calls, chats, invites, message_changes, messages, profile, rooms
from crab.core.storage import command_results
from crab.core.storage.database import Database
from crab.core.storage.failures import as_crab_error, short
from crab.core.worker.outages import DatabaseOutage
from crab.errors import Conflict, CrabError

log = logging.getLogger(__name__)

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
        done = [o for o in outcomes if o is not None]
        _count(batch, done)
        return done

    async def _one(self, command: cmd.Command) -> Outcome:
        """One command in its own transaction; whatever goes wrong is its own."""
        published: ev.Published = []
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
        self, command: cmd.Command, published: ev.Published, retry: bool = True
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

    async def _publish(self, published: ev.Published) -> None:
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
                lambda: self._database.write(messages.store_sends, commands)
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


def _idempotent(conn: Connection, command: cmd.Command, out: ev.Published) -> object:
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


def _dispatch(conn: Connection, command: cmd.Command, out: ev.Published) -> object:
    match command:
        case cmd.SendMessage():
            return messages.handle_send(conn, command, out)
        case cmd.CreateRoom():
            return chats.handle_create_room(conn, command, out)
        case cmd.LeaveChat():
            chats.handle_leave(conn, command, out)
            return None
        case cmd.InviteToRoom():
            return invites.handle_invite_to_room(conn, command, out)
        case cmd.InviteToDirect():
            return invites.handle_invite_to_direct(conn, command, out)
        case cmd.AnswerInvite():
            return invites.handle_answer(conn, command, out)
        case cmd.RenameRoom():
            return rooms.handle_rename(conn, command, out)
        case cmd.SetTopic():
            return rooms.handle_set_topic(conn, command, out)
        case cmd.RemoveMember():
            rooms.handle_remove_member(conn, command, out)
            return None
        case cmd.SetDisplayName():
            return profile.handle_set_display_name(conn, command, out)
        case cmd.EditMessage():
            return message_changes.handle_edit(conn, command, out)
        case cmd.DeleteMessage():
            return message_changes.handle_delete(conn, command, out)
        case cmd.React():
            return message_changes.handle_react(conn, command, out)
        case cmd.StartCall():
            return calls.handle_start(conn, command, out)
        case cmd.AnswerCall():
            return calls.handle_answer(conn, command, out)
        case cmd.LeaveCall():
            return calls.handle_leave(conn, command, out)
        case cmd.StopRinging():
            return calls.handle_stop_ringing(conn, command, out)
    raise TypeError(f"unknown command {command!r}")


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
        case cmd.RenameRoom(user_id=user_id, request_id=request_id):
            pass
        case cmd.SetTopic(user_id=user_id, request_id=request_id):
            pass
        case cmd.RemoveMember(user_id=user_id, request_id=request_id):
            pass
        case cmd.SetDisplayName(user_id=user_id, request_id=request_id):
            pass
        case (
            cmd.EditMessage(user_id=user_id, request_id=request_id)
            | cmd.DeleteMessage(user_id=user_id, request_id=request_id)
            | cmd.React(user_id=user_id, request_id=request_id)
            | cmd.StartCall(user_id=user_id, request_id=request_id)
            | cmd.AnswerCall(user_id=user_id, request_id=request_id)
            | cmd.LeaveCall(user_id=user_id, request_id=request_id)
        ):
            pass
        case cmd.StopRinging(request_id=request_id):
            user_id = 0  # the server's own timer
        case _:
            return None
    return command_results.key(user_id, request_id) if request_id else None


def _count(batch: Sequence[cmd.Command], outcomes: Sequence[Outcome]) -> None:
    """The batch's commands by kind and status, in a few increments."""
    tally: Counter[tuple[str, str]] = Counter()
    stored = 0
    for command, outcome in zip(batch, outcomes, strict=True):
        status = "OK" if outcome.error is None else metrics.status_of(outcome.error)
        tally[type(command).__name__, status] += 1
        stored += status == "OK" and isinstance(command, cmd.SendMessage)
    metrics.count_commands(tally)
    if stored:
        metrics.MESSAGES_STORED.inc(stored)


def _unexpected(exc: Exception, what: str) -> CrabError:
    """An exception no handler expected: an outage's own error, else a bug,
    logged once in one line and answered to this command alone."""
    error = as_crab_error(exc)
    if error is None:
        log.error("%s failed: %s", what, short(exc))
        error = CrabError(FAILED)
    return error
