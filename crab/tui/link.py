"""The live link: the session stream kept open while signed in. It resumes
from the newest message known per chat, sends the outbox again, turns each
frame into an action, and after a loss reconnects with backoff (shown as a
count-down in the status bar)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import StreamTerminatedError

from crab.client.connection import SessionStream
from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import from_server
from crab.tui.account import Account
from crab.tui.state import Connection, Line, Link
from crab.tui.store import Store

BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)  # seconds before each reconnect
TYPING_EVERY = 3.0  # seconds between two typing notices sent for one chat


class LiveLink:
    def __init__(
        self,
        store: Store,
        account: Account,
        spawn: Callable[[Callable[[], Awaitable[None]]], asyncio.Future[Any]],
        on_ready: Callable[[], None],
    ) -> None:
        """`spawn(work)` runs `work()` as a task (so that whoever owns the
        tasks waits for it at close); `on_ready` is called on every (re)connect,
        once the replay is in: the chats are read again then."""
        self.store = store
        self.account = account
        self.client = account.client
        self._spawn = spawn
        self._on_ready = on_ready
        self.live: SessionStream | None = None
        self._task: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()  # cuts a reconnect wait short
        self._was_open = False  # the last try got as far as Ready
        self._typed_at: dict[int, float] = {}  # chat id -> when a notice last went out
        self.away = False  # said again on every (re)connect

    async def typing(self, chat_id: int) -> None:
        """A typing notice, at most one per TYPING_EVERY per chat; none offline."""
        now = time.monotonic()
        if self.live is None or now - self._typed_at.get(chat_id, -TYPING_EVERY) < TYPING_EVERY:
            return
        self._typed_at[chat_id] = now
        with contextlib.suppress(Exception):
            await self.live.typing(chat_id)

    async def set_away(self, away: bool) -> None:
        self.away = away
        if self.live is not None:
            with contextlib.suppress(Exception):
                await self.live.activity(away)

    async def call(self, request: pb.CallRequest) -> bool:
        """A call frame; False when offline (the caller says so)."""
        if self.live is None:
            return False
        try:
            await self.live.call(request)
        except Exception:
            return False
        return True

    def start(self) -> None:
        if self._task is None or self._task.done():
            # A stream stopped by sign-out finishes its cancellation in the
            # background; spawned, close() still waits for it.
            self._task = self._spawn(self._keep_open)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.live = None

    def reconnect_now(self) -> None:
        self._wake.set()

    async def send(self, line: Line) -> None:
        """Sent if the stream is open; the line stays in the outbox until
        acknowledged either way (sent again, same id, on reconnect)."""
        if self.live is not None:
            with contextlib.suppress(Exception):
                await self.live.send(
                    line.chat_id, line.text, line.client_message_id, line.reply_to_id
                )

    def _dispatch(self, action: a.Action) -> None:
        self.store.dispatch(action)

    async def _keep_open(self) -> None:
        attempt = 0
        while self.account.signed_in:
            link = Link.CONNECTING if attempt == 0 else Link.RECONNECTING
            self._dispatch(a.ConnectionChanged(Connection(link)))
            self._was_open = False
            try:
                await self._open_once()
                attempt = 0
                detail = "the server ended the stream"
            except asyncio.CancelledError:
                raise
            except GRPCError as error:
                if error.status is Status.UNAUTHENTICATED:
                    try:
                        await self.account.refresh()
                        continue
                    except (GRPCError, OSError, StreamTerminatedError):
                        if not self.account.signed_in:
                            return
                detail = from_server.describe(error)
            except Exception as error:
                detail = from_server.describe(error)
            self.live = None
            if self._was_open:
                # A link that worked and then broke: a new outage, so the
                # backoff starts again from its shortest wait.
                attempt = 0
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            await self._count_down(delay, detail)

    async def _count_down(self, delay: float, detail: str) -> None:
        self._wake.clear()
        left = delay
        while left > 0:
            self._dispatch(a.ConnectionChanged(Connection(Link.RECONNECTING, left, detail)))
            step = min(1.0, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
                return
            left -= step

    async def _open_once(self) -> None:
        state = self.store.state
        # Resume from the newest message known per chat: no gap, no duplicate.
        cursors = {chat.id: chat.last_message_id for chat in state.chats}
        # And the newest change applied: edits, deletes and reactions too.
        changes = {chat.id: chat.last_change_seq for chat in state.chats}
        me = self.client.user.id
        async with self.client.session(cursors, changes) as live:
            self.live = live
            if me == 0 and live.ready is not None and live.ready.user is not None:
                # Started offline from a saved session: now we know who we are.
                assert self.client.tokens is not None
                self.client.tokens.user = live.ready.user
                me = live.ready.user.id
                self._dispatch(a.SignedIn(from_server.person(live.ready.user)))
            self._was_open = True
            self._dispatch(a.ConnectionChanged(Connection(Link.CONNECTED)))
            if live.ready is not None and live.ready.max_message_chars:
                self._dispatch(a.LimitsKnown(live.ready.max_message_chars))
            for frame in live.backlog:
                self._frame(frame, me)
            self._on_ready()
            if self.away:
                await live.activity(away=True)
            # Messages typed while offline go out now, once each (same ids).
            for line in self.store.state.outbox:
                await live.send(line.chat_id, line.text, line.client_message_id, line.reply_to_id)
            while (frame := await live.recv()) is not None:
                self._frame(frame, me)

    def _frame(self, frame: pb.ServerFrame, me: int) -> None:
        action = from_server.action(frame, me)
        if action is not None:
            self._dispatch(action)
