"""Live delivery: each connected client has a LiveSession fed by the Hub,
which binds this process's broker subscription to the topics its users need.

No gap, no duplicate: a session subscribes first, then reads where each chat
stands, then replays what the client missed (from its cursors); afterwards
every message is checked against the newest id sent for its chat. Ids are
gap-free per chat, so a jump means something was missed (events from two
workers can cross) and it is read from the database before going on.

Changes (edits, deletes, reactions: docs/conversation.md) are tracked the
same way with the chat's change numbers: a session keeps per chat the
newest change_seq it sent, skips a change already covered, and on a jump
reads the changes after it from the database (holes are expected there: a
message changed twice is read once, at its newest change). A Resume replays
a chat's messages first, then its changes after the cursor's change_seq
(0: from the first change, so a client that never saw one misses none).
A changed message goes out as `Changed` (ServerFrame.message_changed).

Receipts, typing and presence (ev.EPHEMERAL) are news, not history: they
wait in the same queue but only while it is short (`ephemeral_room`), and
a queue about to overflow drops them before it ends the stream; so they
never make a session overflow nor hold up a message for long.

Replay costs what the client reads: a batch reads at most one page from the
database; the rest waits in the queue until the writer has sent that batch
(so a client that stops reading stops the reads too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from crab.config import CallSettings, Limits
from crab.core import metrics
from crab.core.broker.base import Broker, Subscription
from crab.core.domain import events as ev
from crab.core.domain.models import Call, Caller, CallMemberState, Message, User
from crab.core.services import stream_check
from crab.core.services.calls import CallFailed, CallView, Phone
from crab.core.services.presence import PresenceBoard
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.resume import ResumeGuard, ResumeLimits
from crab.core.services.typing import publish_typing
from crab.core.storage import calls as call_store
from crab.core.storage import chats, message_changes, messages, users
from crab.core.storage.database import Database
from crab.errors import CrabError, ResourceExhausted, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

BACKFILL_PAGE = 500
TYPING_INTERVAL = 2.0  # seconds between two typing notices of one session in one chat
SESSION_CHECK = 20.0  # seconds between checks of open streams' sessions and chats
ACTIVITY_RATE, ACTIVITY_BURST = 0.2, 5  # away/back changes per second of one session


@dataclass(frozen=True, slots=True)
class Ready:
    """Sent once the session is live: everything before it is in history
    (or was replayed from the cursors); everything after arrives here."""

    user: User
    max_message_chars: int = 0


@dataclass(frozen=True, slots=True)
class Ack:
    client_message_id: str
    message: Message


@dataclass(frozen=True, slots=True)
class SendFailed:
    client_message_id: str
    chat_id: int
    error: CrabError


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Replay what is stored after the newest id sent for this chat."""

    chat_id: int


@dataclass(frozen=True, slots=True)
class CatchUpChanges:
    """Replay the changes after the newest change_seq sent for this chat."""

    chat_id: int


@dataclass(frozen=True, slots=True)
class Changed:
    """A message as it is after an edit, a delete or a reaction."""

    message: Message


Item = ev.Event | Ready | Ack | SendFailed | CatchUp | CatchUpChanges | CallView | CallFailed
Outgoing = ev.Event | Ready | Ack | SendFailed | Message | Changed | CallView | CallFailed


class LiveSession:
    def __init__(
        self,
        hub: Hub,
        caller: Caller,
        buffer: int,
        resume: ResumeLimits,
        typing_interval: float = TYPING_INTERVAL,
    ) -> None:
        self.hub = hub
        self.caller = caller
        self.user: User | None = None  # set once live (Ready)
        # One typing notice per interval per chat (keyed by chat id).
        self.typing = RateLimiter(1 / typing_interval, 1)
        self.away = False
        # Away and back: a client sends one after idle minutes; a flood is dropped.
        self.activity = RateLimiter(ACTIVITY_RATE, ACTIVITY_BURST)
        self.chats: set[int] = set()
        self.calls: dict[str, int] = {}  # the calls this session is in: call id -> chat id
        self._sent_up_to: dict[int, int] = {}  # chat id -> newest message id sent
        self._changes_up_to: dict[int, int] = {}  # chat id -> newest change_seq sent
        self._items: deque[Item] = deque()
        self._buffer = buffer
        # Ephemeral news only joins a queue shorter than this.
        self._ephemeral_room = max(1, buffer // 4)
        self._wakeup = asyncio.Event()
        self.error: CrabError | None = None
        self.ended = asyncio.Event()  # set with `error`: the stream must stop now
        self._finishing = False
        self.resume_guard = ResumeGuard(resume)

    @property
    def queued(self) -> int:
        """Items waiting for the stream's writer (a metric reads it)."""
        return len(self._items)

    # ---- feeding (never blocks: a slow client only hurts itself) ---------

    def push(self, item: Item) -> None:
        if self.error is not None:
            return
        if len(self._items) >= self._buffer:
            self._drop_ephemeral()
        if len(self._items) >= self._buffer:
            metrics.SESSION_OVERFLOWS.inc()
            self.end(
                ResourceExhausted(
                    "this client fell behind and its stream buffer overflowed; "
                    "reconnect and resume from the last message id you saw"
                )
            )
            return
        self._items.append(item)
        self._wakeup.set()

    def push_ephemeral(self, event: ev.Event) -> None:
        """Receipts, typing, presence: only into a short queue, never my own
        receipt or typing, nor those of a chat this stream does not carry."""
        if self.error is not None or len(self._items) >= self._ephemeral_room:
            return
        if isinstance(event, ev.Typing) and (
            event.user.id == self.caller.user_id or event.chat_id not in self.chats
        ):
            return
        if isinstance(event, ev.ReadMoved) and (
            event.user_id == self.caller.user_id or event.chat_id not in self.chats
        ):
            return
        self._items.append(event)
        self._wakeup.set()

    def _drop_ephemeral(self) -> None:
        kept = [item for item in self._items if not isinstance(item, ev.EPHEMERAL)]
        if len(kept) < len(self._items):
            self._items = deque(kept)

    def end(self, error: CrabError) -> None:
        if self.error is None:
            self.error = error
            self._items.clear()
            self._wakeup.set()
            self.ended.set()

    def finish(self) -> None:
        """The client is done sending: flush what is queued, then stop."""
        self._finishing = True
        self._wakeup.set()

    async def on_event(self, event: ev.Event) -> None:
        match event:
            case ev.ChatJoined(chat=chat):
                if chat.id in self.chats:
                    return
                await self.hub.follow_chat(self, chat.id)
                self._sent_up_to[chat.id] = chat.last_message_id
                self._changes_up_to[chat.id] = chat.last_change_seq
                self.push(event)
                self.push(CatchUp(chat.id))  # anything sent before our binding took
            case ev.ChatLeft(chat_id=chat_id):
                if chat_id in self.chats:
                    await self.hub.unfollow_chat(self, chat_id)
                self.push(event)
            case ev.UserUpdated(user=user):
                if user.id == self.caller.user_id:
                    self.user = user  # my typing notices carry my new name
                self.push(event)
            case ev.CallChanged(call=call):
                if call.chat_id in self.chats:
                    self.show_call(call)
            case ev.CallSignalled(to_session_id=to_session):
                if to_session == self.caller.session_id:
                    self.push(event)
            case ev.SessionEnded(session_id=session_id, keep_session_id=keep):
                mine = self.caller.session_id
                if session_id == mine or (session_id is None and keep != mine):
                    self.end(Unauthenticated("signed out"))
            case _:
                self.push(event)

    def show_call(self, call: Call) -> None:
        """A call of one of my chats as it is now; notes whether this
        session is the one of mine in it (a drop then leaves it)."""
        me = call.member(self.caller.user_id)
        here = (
            me is not None
            and me.state == CallMemberState.JOINED
            and me.session_id == self.caller.session_id
        )
        if here:
            self.calls[call.id] = call.chat_id
        else:
            self.calls.pop(call.id, None)
        self.push(self.hub.phone.view(call, self.caller.user_id, here))

    # ---- draining (the stream's writer) ----------------------------------

    async def next_batch(self) -> list[Outgoing] | None:
        """Everything ready to send, in order; None once finished. Raises
        the error that ended the session."""
        while not self._items:
            if self.error is not None:
                raise self.error
            if self._finishing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        items = list(self._items)
        self._items.clear()
        out: list[Outgoing] = []
        reads = _Reads()
        for index, item in enumerate(items):
            match item:
                case ev.MessageCreated(message=message):
                    done = await self._message(message, out, reads)
                case ev.MessageChanged(message=message):
                    done = await self._changed(message, out, reads)
                case CatchUp(chat_id=chat_id):
                    done = chat_id not in self.chats or await self._backfill(
                        chat_id, None, out, reads
                    )
                case CatchUpChanges(chat_id=chat_id):
                    done = chat_id not in self.chats or await self._changes_backfill(
                        chat_id, None, out, reads
                    )
                case _:
                    out.append(item)
                    continue
            if not done:
                # This batch has read its page: the item and those after it
                # wait until the writer has sent this one (and asks again).
                self._items.extendleft(reversed(items[index:]))
                break
        return out

    async def _message(self, message: Message, out: list[Outgoing], reads: _Reads) -> bool:
        """Adds the message (after filling any gap before it); False when the
        gap needs more than this batch may read."""
        chat_id = message.chat_id
        if chat_id not in self.chats:
            return True  # left meanwhile
        sent = self._sent_up_to.get(chat_id, 0)
        if message.id <= sent:
            return True  # already sent (replayed, or delivered twice)
        if message.id > sent + 1 and not await self._backfill(chat_id, message.id - 1, out, reads):
            return False
        out.append(message)
        self._sent_up_to[chat_id] = message.id
        return True

    async def _backfill(
        self, chat_id: int, up_to: int | None, out: list[Outgoing], reads: _Reads
    ) -> bool:
        """Reads one page after the newest id sent (up to `up_to`, or to the
        end); True once nothing is left, False if there may be more (or this
        batch has already read its page)."""
        after = self._sent_up_to.get(chat_id, 0)
        if up_to is not None and after >= up_to:
            return True
        if reads.done:
            return False
        reads.done = True
        found = await self.hub.messages_after(chat_id, after)
        for message in found:
            if up_to is not None and message.id > up_to:
                return True
            out.append(message)
            self._sent_up_to[chat_id] = message.id
        return len(found) < BACKFILL_PAGE

    async def _changed(self, message: Message, out: list[Outgoing], reads: _Reads) -> bool:
        """Adds the changed message unless a change as new was sent; after a
        jump, reads the changes after the newest sent instead. False when
        that needs more than this batch may read."""
        chat_id = message.chat_id
        if chat_id not in self.chats:
            return True
        if message.id > self._sent_up_to.get(chat_id, 0) and not await self._backfill(
            chat_id, message.id, out, reads
        ):
            return False  # the message itself first (read as it is now)
        sent = self._changes_up_to.get(chat_id, 0)
        if message.change_seq <= sent:
            return True  # covered: sent already, or a newer copy was
        if message.change_seq > sent + 1:
            return await self._changes_backfill(chat_id, message.change_seq, out, reads)
        out.append(Changed(message))
        self._changes_up_to[chat_id] = message.change_seq
        return True

    async def _changes_backfill(
        self, chat_id: int, up_to: int | None, out: list[Outgoing], reads: _Reads
    ) -> bool:
        """Reads one page of changes after the newest change_seq sent; True
        once `up_to` (or, for None, the end) is covered."""
        after = self._changes_up_to.get(chat_id, 0)
        if up_to is not None and after >= up_to:
            return True
        if reads.done:
            return False
        reads.done = True
        found = await self.hub.changes_after(chat_id, after)
        for message in found:
            out.append(Changed(message))
            self._changes_up_to[chat_id] = message.change_seq
        if up_to is not None and self._changes_up_to.get(chat_id, 0) >= up_to:
            return True
        return len(found) < BACKFILL_PAGE

    def start_from(self, cursors: dict[int, tuple[int, int]]) -> None:
        """The stream's first Resume (checked by `ResumeGuard.cursors`):
        replays each chat after the id the client says it saw last, then
        the changes after the change_seq it says it applied last."""
        for chat_id, (last_seen, last_change) in cursors.items():
            if chat_id in self.chats:  # not left while the stream was starting
                self._sent_up_to[chat_id] = last_seen
                self.push(CatchUp(chat_id))
                # Known at connect: the chat's newest change. Nothing after
                # the client's: no read. A claim beyond it changes nothing.
                if last_change < self._changes_up_to.get(chat_id, 0):
                    self._changes_up_to[chat_id] = last_change
                    self.push(CatchUpChanges(chat_id))

    def resume(self, cursors: Sequence[tuple[int, int, int]]) -> None:
        """A Resume on the open stream: rate-limited, and it only moves a
        chat's point forward (what this stream sent is never sent again).
        Too many, or too many cursors, ends the stream."""
        try:
            self.resume_guard.take()
            wanted = self.resume_guard.cursors(cursors, self.chats)
        except CrabError as error:
            self.end(error)
            return
        for chat_id, (last_seen, last_change) in wanted.items():
            if last_seen > self._sent_up_to.get(chat_id, 0):
                self._sent_up_to[chat_id] = last_seen
            if last_change > self._changes_up_to.get(chat_id, 0):
                self._changes_up_to[chat_id] = last_change


class _Reads:
    """The database reads one batch has made (at most one page)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


class Hub:
    """Routes this process's events to its live sessions, and keeps the
    broker bindings to exactly the topics those sessions need."""

    def __init__(
        self,
        database: Database,
        broker: Broker,
        buffer: int,
        resume: ResumeLimits | None = None,
        presence: PresenceBoard | None = None,
        typing_interval: float = TYPING_INTERVAL,
        max_message_chars: int = 0,
        phone: Phone | None = None,
        session_check: float = SESSION_CHECK,
    ) -> None:
        self.database = database
        self._session_check = session_check
        self._checking: asyncio.Task[None] | None = None
        self.phone = phone or Phone(database, broker, Limits(), CallSettings())
        self._max_message_chars = max_message_chars
        self._broker = broker
        self.presence = presence or PresenceBoard(database, broker, 10.0, 30.0)
        self.presence.on_gone = self.phone.gone  # a killed replica's users leave their calls
        self._typing_interval = typing_interval
        self._buffer = buffer
        self._resume = resume or ResumeLimits()
        self._topics: dict[str, set[LiveSession]] = {}
        self._subscription: Subscription | None = None
        self._closed = False
        # Reads in flight for backfills: when events arrive out of order (two
        # workers), every member's stream sees the same gap at once; they
        # share one query instead of each asking the database.
        # Keyed (what, chat, after): what is "messages" or "changes".
        self._reading: dict[tuple[str, int, int], asyncio.Future[list[Message]]] = {}

    async def start(self) -> None:
        self._subscription = await self._broker.subscribe(self._on_event, self._events_lost)
        await self._subscription.bind(ev.PRESENCE_TOPIC)
        await self.presence.start()
        if self._session_check > 0:
            self._checking = asyncio.create_task(
                stream_check.check_every(self._session_check, self.database, self.sessions)
            )

    def _events_lost(self) -> None:
        """The broker may have dropped events for this process (RabbitMQ's
        queue was gone while the link was down): joins, leaves, sign-outs,
        messages no later one reveals. Every stream ends with UNAVAILABLE;
        its client reconnects (its session checked again) and resumes, which
        reads its chats and replays the messages it missed."""
        sessions = self.sessions()
        if sessions:
            log.warning(
                "events may have been lost while the broker was away; "
                "ending %d session streams (their clients resume)",
                len(sessions),
            )
        for session in sessions:
            session.end(Unavailable("the server may have missed events; reconnect and resume"))

    async def close(self) -> None:
        self._closed = True
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
        await self.presence.close()
        await self.phone.close()
        for session in self.sessions():
            session.end(Unavailable("server is shutting down; reconnect and resume"))
        if self._subscription is not None:
            await self._subscription.close()

    async def check_streams(self) -> None:
        """The admin's changes to sessions and chats, to this process's streams."""
        await stream_check.check_streams(self.database, self.sessions())

    def sessions(self) -> set[LiveSession]:
        return {s for group in self._topics.values() for s in group}

    async def connect(self, caller: Caller, cursors: Sequence[tuple[int, int, int]]) -> LiveSession:
        if self._closed:
            raise Unavailable("server is shutting down; reconnect and resume")
        session = LiveSession(self, caller, self._buffer, self._resume, self._typing_interval)
        try:
            await self._follow(session, ev.user_topic(caller.user_id))
            user, chat_ids = await self.database.read(_user_and_chats, caller.user_id)
            if user is None:
                raise Unauthenticated("your account no longer exists")
            # Checked before any binding: too many cursors is refused at once;
            # chats the caller is not in are dropped (outsiders learn nothing).
            wanted = session.resume_guard.cursors(cursors, set(chat_ids))
            for chat_id in chat_ids:
                await self.follow_chat(session, chat_id)
            # Read positions after binding: anything newer arrives as an event.
            positions, changes, calls = await self.database.read(_positions, caller.user_id)
            for chat_id, last_id in positions.items():
                session._sent_up_to.setdefault(chat_id, last_id)
                session._changes_up_to.setdefault(chat_id, changes.get(chat_id, 0))
            for chat_id in session.chats - positions.keys():
                await self.unfollow_chat(session, chat_id)  # left while we were binding
            session.start_from(wanted)
            session.user = user
            session.push(Ready(user, self._max_message_chars))
            # Calls going on in my chats: ringing for me, or mine to rejoin.
            for call in calls:
                if call.chat_id in session.chats:
                    session.show_call(call)
            await self.presence.joined(caller.user_id, session)
        except BaseException:
            # Failed or cancelled half way (a bind while the broker is away):
            # leave no binding behind for a session that never went live.
            await self.disconnect(session)
            raise
        return session

    async def messages_after(self, chat_id: int, after: int) -> list[Message]:
        """A page of the chat's messages after `after` (one query however
        many sessions ask for the same page at once)."""
        return await self._shared(("messages", chat_id, after))

    async def changes_after(self, chat_id: int, after_change_seq: int) -> list[Message]:
        """A page of the chat's changes after `after_change_seq`, shared the same way."""
        return await self._shared(("changes", chat_id, after_change_seq))

    async def _shared(self, key: tuple[str, int, int]) -> list[Message]:
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(*key))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)  # one reader cancelled: the others go on

    async def _read(self, what: str, chat_id: int, after: int) -> list[Message]:
        read = messages.after if what == "messages" else messages.changes_after
        return await self.database.read(read, chat_id, after, BACKFILL_PAGE)

    async def disconnect(self, session: LiveSession) -> None:
        # Shielded whole: a stream reset cancels its handler, often while it
        # is in here. Cancelled half way (only presence.left was shielded),
        # the session stayed bound to its topics for the life of the process:
        # crab_sessions_connected never came back to 0 (tests/integration/
        # test_metrics.py found it).
        await asyncio.shield(self._disconnect(session))

    async def _disconnect(self, session: LiveSession) -> None:
        # First: the user must not stay online for a stream that is gone.
        await self.presence.left(session.caller.user_id, session)
        if session.calls:
            self.phone.dropped(session.caller, dict(session.calls), lambda: self._back(session))
        # The session's own topics, not a scan of every topic this process holds.
        for chat_id in list(session.chats):
            await self.unfollow_chat(session, chat_id)
        await self._unfollow(session, ev.user_topic(session.caller.user_id))

    def _back(self, gone: LiveSession) -> bool:
        """Whether a stream of the same sign-in came back to this process."""
        mine = self._topics.get(ev.user_topic(gone.caller.user_id), ())
        return any(
            s is not gone and s.caller.session_id == gone.caller.session_id and s.error is None
            for s in mine
        )

    async def typed(self, session: LiveSession, chat_id: int) -> None:
        """A Typing frame: dropped unless a member's, at most one per interval."""
        if session.user is not None and chat_id in session.chats and session.typing.allow(chat_id):
            await publish_typing(self._broker, chat_id, session.user)

    async def set_away(self, session: LiveSession, away: bool) -> None:
        """An Activity frame: only a change counts (repeats cost nothing)."""
        if away != session.away and session.activity.allow(0):
            session.away = away
            await self.presence.set_away(session.caller.user_id, session, away)

    async def follow_chat(self, session: LiveSession, chat_id: int) -> None:
        session.chats.add(chat_id)
        await self._follow(session, ev.chat_topic(chat_id))

    async def unfollow_chat(self, session: LiveSession, chat_id: int) -> None:
        session.chats.discard(chat_id)
        await self._unfollow(session, ev.chat_topic(chat_id))

    async def _follow(self, session: LiveSession, topic: str) -> None:
        group = self._topics.setdefault(topic, set())
        group.add(session)
        if len(group) == 1 and self._subscription is not None:
            await self._subscription.bind(topic)

    async def _unfollow(self, session: LiveSession, topic: str) -> None:
        group = self._topics.get(topic)
        if group is None:
            return
        group.discard(session)
        if not group:
            del self._topics[topic]
            if self._subscription is not None:
                await self._subscription.unbind(topic)

    async def _on_event(self, topic: str, event: ev.Event) -> None:
        if isinstance(event, ev.PresenceBeat):
            await self.presence.on_beat(event)
            return
        sessions = tuple(self._topics.get(topic, ()))
        if isinstance(event, ev.EPHEMERAL):
            for session in sessions:
                session.push_ephemeral(event)
            return
        if isinstance(event, (ev.MessageCreated, ev.MessageChanged)):
            for session in sessions:  # the fan-out: a plain push, no coroutine each
                session.push(event)
            return
        for session in sessions:
            await session.on_event(event)


def _positions(conn: Connection, user_id: int) -> tuple[dict[int, int], dict[int, int], list[Call]]:
    """Per chat of the user: the newest message id, the newest change_seq;
    and the calls going on in them (one read for a stream that starts)."""
    return (
        chats.positions(conn, user_id),
        message_changes.change_positions(conn, user_id),
        call_store.live_for_member(conn, user_id),
    )


def _user_and_chats(conn: Connection, user_id: int) -> tuple[User | None, list[int]]:
    return users.by_id(conn, user_id), list(chats.positions(conn, user_id))
