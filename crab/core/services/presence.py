"""Presence: online while a user has a live session, away when every one of
their sessions says so (Activity{away}), offline when the last one ends.

Each server process knows its own sessions and tells the others on the
broker's PRESENCE_TOPIC: a PresenceBeat with what changed, at once, and a
full one every `heartbeat` seconds. A process whose beats stop for
`expiry` seconds (killed with -9) is forgotten, and its users with it.
Every process so holds the same view of who is online where; a user's
state is the most present over all processes.

One process announces: the leader, the one with the smallest id among
those alive (the others keep the same view, so a new leader knows what
was announced). A change goes to each person who shares a chat with the
user (not the user), on their own topic, once, coalesced per user; going offline writes
users.last_seen_at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass

from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import events as ev
from crab.core.domain.models import Presence, PresenceState
from crab.core.services.coalesce import Coalescer
from crab.core.storage import chats, users
from crab.core.storage.database import Database

log = logging.getLogger(__name__)

COALESCE_SECONDS = 1.0  # at most one presence change per user and second


@dataclass(slots=True)
class _Replica:
    users: dict[int, bool]  # user id -> away
    heard_at: float


class PresenceBoard:
    def __init__(
        self,
        database: Database,
        broker: Broker,
        heartbeat: float,
        expiry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._broker = broker
        self._heartbeat = heartbeat
        self._expiry = expiry
        self._clock = clock
        self.replica = uuid.uuid4().hex
        # This process's sessions: user id -> {session: away}.
        self._sessions: dict[int, dict[Hashable, bool]] = {}
        self._others: dict[str, _Replica] = {}
        self._known: dict[int, PresenceState] = {}  # the view announced (or, not leading, seen)
        self._announce: Coalescer[int, Presence] = Coalescer(COALESCE_SECONDS, self._publish)
        self._beating: asyncio.Task[None] | None = None
        # Called by the leader with the users a dead process took offline
        # (the calls they were in: Hub sets it to Phone.gone).
        self.on_gone: Callable[[list[int]], Awaitable[None]] | None = None

    async def start(self) -> None:
        """Asks the others for their users (a new process knows no one)."""
        await self._beat(full=True, ask=True)
        self._beating = asyncio.ensure_future(self._beat_forever())

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        self._announce.close()

    # ---- this process's sessions ---------------------------------------------

    async def joined(self, user_id: int, session: Hashable) -> None:
        await self._change(user_id, lambda sessions: sessions.__setitem__(session, False))

    async def set_away(self, user_id: int, session: Hashable, away: bool) -> None:
        def mark(sessions: dict[Hashable, bool]) -> None:
            if session in sessions:
                sessions[session] = away

        await self._change(user_id, mark)

    async def left(self, user_id: int, session: Hashable) -> None:
        await self._change(user_id, lambda sessions: sessions.pop(session, None))

    async def _change(self, user_id: int, edit: Callable[[dict[Hashable, bool]], object]) -> None:
        before = self._local(user_id)
        sessions = self._sessions.setdefault(user_id, {})
        edit(sessions)
        if not sessions:
            del self._sessions[user_id]
        after = self._local(user_id)
        if after == before:
            return
        if after is None:
            beat = ev.PresenceBeat(self.replica, gone=(user_id,))
        else:
            beat = ev.PresenceBeat(self.replica, users=(ev.UserState(user_id, after),))
        await self._send(beat)
        await self._settle((user_id,))

    def _local(self, user_id: int) -> bool | None:
        """None: no session here; else whether all of them are away."""
        sessions = self._sessions.get(user_id)
        return None if not sessions else all(sessions.values())

    # ---- the other processes -------------------------------------------------

    async def on_beat(self, beat: ev.PresenceBeat) -> None:
        if beat.replica == self.replica:
            return
        replica = self._others.get(beat.replica)
        touched: set[int] = set()
        if replica is None or beat.full:
            touched |= set(replica.users) if replica else set()
            replica = self._others[beat.replica] = _Replica({}, self._clock())
        replica.heard_at = self._clock()
        for state in beat.users:
            replica.users[state.user_id] = state.away
            touched.add(state.user_id)
        for user_id in beat.gone:
            replica.users.pop(user_id, None)
            touched.add(user_id)
        if beat.ask:
            await self._beat(full=True)
        await self._settle(touched)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat(full=True)
                await self._expire()
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)

    async def _expire(self) -> None:
        """Forgets processes not heard of for `expiry` seconds."""
        cutoff = self._clock() - self._expiry
        for name in [n for n, r in self._others.items() if r.heard_at < cutoff]:
            gone = self._others.pop(name)
            log.info("presence: no beat from %s; its %d users are offline", name, len(gone.users))
            await self._settle(gone.users)
            offline = [u for u in gone.users if self.state(u) == PresenceState.OFFLINE]
            if offline and self.on_gone is not None and self.leading():
                try:
                    await self.on_gone(offline)
                except Exception:
                    log.warning("could not act on a dead process's users", exc_info=True)

    async def _beat(self, full: bool, ask: bool = False) -> None:
        states = tuple(
            ev.UserState(u, away) for u in self._sessions if (away := self._local(u)) is not None
        )
        await self._send(ev.PresenceBeat(self.replica, states, full=full, ask=ask))

    async def _send(self, beat: ev.PresenceBeat) -> None:
        try:
            await self._broker.publish(ev.PRESENCE_TOPIC, beat)
        except Exception:
            # The next full beat corrects the others' view.
            log.warning("could not publish a presence beat", exc_info=True)

    # ---- the view ------------------------------------------------------------

    def state(self, user_id: int) -> PresenceState:
        aways = [r.users[user_id] for r in self._others.values() if user_id in r.users]
        local = self._local(user_id)
        if local is not None:
            aways.append(local)
        if not aways:
            return PresenceState.OFFLINE
        return PresenceState.AWAY if all(aways) else PresenceState.ONLINE

    def leading(self) -> bool:
        return all(self.replica < name for name in self._others)

    async def _settle(self, user_ids: Iterable[int]) -> None:
        """Announces (when leading) each user whose state changed."""
        changed: list[tuple[int, PresenceState]] = []
        for user_id in user_ids:
            state = self.state(user_id)
            if self._known.get(user_id, PresenceState.OFFLINE) != state:
                changed.append((user_id, state))
            if state == PresenceState.OFFLINE:
                self._known.pop(user_id, None)
            else:
                self._known[user_id] = state
        if not changed or not self.leading():
            return
        when = now()
        gone = [user_id for user_id, state in changed if state == PresenceState.OFFLINE]
        if gone:
            try:
                await self._database.write(users.set_last_seen, gone, when)
            except Exception:
                log.warning("could not write last_seen_at", exc_info=True)
        for user_id, state in changed:
            seen = when if state == PresenceState.OFFLINE else None
            await self._announce.put(user_id, Presence(user_id, state, seen))

    async def _publish(self, user_id: int, presence: Presence) -> None:
        # On each person's own topic: once each, however many chats they share;
        # not the user's own (their client knows whether it is there).
        others = await self._database.read(chats.co_member_ids, user_id)
        for other in sorted(others - {user_id}):
            await self._broker.publish(ev.user_topic(other), ev.PresenceChanged(presence))

    async def presences(self, user_ids: list[int]) -> list[Presence]:
        """Each user's presence now (offline ones with their last_seen_at)."""
        seen = await self._database.read(users.last_seen, user_ids)
        out = []
        for user_id in user_ids:
            state = self.state(user_id)
            last = seen.get(user_id) if state == PresenceState.OFFLINE else None
            out.append(Presence(user_id, state, last))
        return out
