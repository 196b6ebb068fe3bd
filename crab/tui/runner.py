"""Effects: the only client code that does I/O. Each effect becomes an RPC
or a stream operation whose result is dispatched back as an action. The
session stream lives here too, reconnecting with backoff and resuming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import StreamTerminatedError

from crab.client.connection import CrabClient, SessionStream, new_request_id
from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui import wire
from crab.tui.saved import SavedSession, SessionFile
from crab.tui.state import Connection, Link
from crab.tui.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

SEARCH_DEBOUNCE = 0.15  # seconds of quiet typing before a search goes out
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)
PAGE = 100
CLOSE_TIMEOUT = 2.0  # seconds for the tasks to finish when crab chat closes
# Pauses before an action (create, invite, answer) is tried again after
# UNAVAILABLE or a lost connection, with the same request id.
ACTION_RETRIES = (1.0, 2.0, 4.0)


def describe(error: BaseException) -> str:
    if isinstance(error, GRPCError):
        return error.message or error.status.name.lower()
    return str(error) or type(error).__name__


class Runner:
    def __init__(
        self,
        store: Store,
        client: CrabClient,
        sessions: SessionFile,
        server: str,
        on_quit: Callable[[], None],
        on_bell: Callable[[], None],
    ) -> None:
        self.store = store
        self.client = client
        self.sessions = sessions
        self.server = server
        self.on_quit = on_quit
        self.on_bell = on_bell
        self.live: SessionStream | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_task: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()  # cuts a reconnect wait short

    # ---- plumbing --------------------------------------------------------

    def __call__(self, effect: fx.Effect) -> None:
        self.spawn(self.run(effect))

    def spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Runs `work` as a task that close() cancels and waits for (so no
        task is left pending, or with an exception nobody retrieves)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def dispatch(self, action: a.Action) -> None:
        self.store.dispatch(action)

    async def call(self, rpc: Callable[[dict[str, str]], Awaitable[T]]) -> T:
        """An RPC with the current token; an expired token is refreshed once."""
        try:
            return await rpc(self.client.metadata)
        except GRPCError as error:
            if error.status is not Status.UNAUTHENTICATED or self.client.tokens is None:
                raise
            await self._refresh()
            return await rpc(self.client.metadata)

    async def act(self, rpc: Callable[[dict[str, str]], Awaitable[T]]) -> T:
        """A user action whose request carries its request id: tried again
        after UNAVAILABLE or a lost answer. The server answers a retry with
        the first result, so a room is never made twice."""
        for pause in ACTION_RETRIES:
            try:
                return await self.call(rpc)
            except GRPCError as error:
                if error.status is not Status.UNAVAILABLE:
                    raise
            except (OSError, StreamTerminatedError):
                pass
            await asyncio.sleep(pause)
        return await self.call(rpc)

    async def _refresh(self) -> None:
        try:
            await self.client.refresh()
        except GRPCError as error:
            if error.status is Status.UNAUTHENTICATED:
                self._signed_out("your session ended; sign in again")
            raise
        self._save()

    def _save(self) -> None:
        tokens = self.client.tokens
        if tokens is not None and tokens.user is not None:
            self.sessions.save(
                SavedSession(
                    self.server, tokens.user.username, tokens.access_token, tokens.refresh_token
                )
            )

    def _signed_out(self, reason: str) -> None:
        self.sessions.forget(self.server)
        self.client.tokens = None
        self._stop_stream()
        self.dispatch(a.SignedOut(reason))

    async def close(self) -> None:
        self._stop_stream()
        for task in list(self._tasks):
            task.cancel()
        # Each leaves its call (the stream with RST_STREAM) before the channel
        # closes; a connection that stopped moving must not keep crab open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*self._tasks, return_exceptions=True), CLOSE_TIMEOUT
            )

    # ---- start -----------------------------------------------------------

    async def resume_saved(self) -> bool:
        """Opens straight into the chats when this server's session was saved."""
        saved = self.sessions.load(self.server)
        if saved is None:
            return False
        self.client.tokens = pb.Tokens(
            access_token=saved.access_token,
            refresh_token=saved.refresh_token,
            user=pb.User(username=saved.username),
        )
        try:
            me = await self.call(lambda md: self.client.accounts.who_am_i(pb.Empty(), metadata=md))
        except GRPCError:
            self._signed_out("your saved session has ended; sign in again")
            return False
        except (OSError, StreamTerminatedError):
            # Server unreachable: still open the chats and keep trying.
            me = pb.User(username=saved.username)
        self.client.tokens.user = me
        self._signed_in(me)
        return True

    def _signed_in(self, me: pb.User) -> None:
        self.dispatch(a.SignedIn(wire.person(me)))
        self._start_stream()

    # ---- effects ---------------------------------------------------------

    async def run(self, effect: fx.Effect) -> None:
        try:
            await self._run(effect)
        except asyncio.CancelledError:
            raise
        except GRPCError as error:
            self.dispatch(a.Failed(describe(error)))
        except (OSError, StreamTerminatedError, ConnectionError):
            self.dispatch(a.Failed("offline: the server cannot be reached"))
        except Exception as error:  # an effect must never take the app down
            log.exception("effect %r failed", effect)
            self.dispatch(a.Failed(describe(error)))

    async def _run(self, effect: fx.Effect) -> None:
        c = self.client
        match effect:
            case fx.SignIn(username=username, password=password, sign_up=sign_up):
                try:
                    if sign_up:
                        me = await c.sign_up(username, password)
                    else:
                        me = await c.sign_in(username, password)
                except GRPCError as error:
                    self.dispatch(a.SignInFailed(describe(error)))
                    return
                except (OSError, StreamTerminatedError):
                    self.dispatch(a.SignInFailed(f"cannot reach {self.server}"))
                    return
                self._save()
                self._signed_in(me)
            case fx.LoadChats():
                chats = await self.call(lambda md: c.chats.my_chats(pb.Empty(), metadata=md))
                invites = await self.call(lambda md: c.invites.my_invites(pb.Empty(), metadata=md))
                self.dispatch(
                    a.ChatsLoaded(
                        tuple(wire.summary(s) for s in chats.chats),
                        tuple(wire.invite(i) for i in invites.received),
                        tuple(wire.invite(i) for i in invites.sent),
                    )
                )
            case fx.LoadHistory(chat_id=chat_id, before=before):
                request = pb.GetMessagesRequest(chat_id=chat_id, before_id=before, limit=PAGE)
                page = await self.call(lambda md: c.chats.get_messages(request, metadata=md))
                lines = tuple(wire.line(m) for m in reversed(page.messages))
                self.dispatch(a.HistoryLoaded(chat_id, lines, page.has_more))
            case fx.LoadMembers(chat_id=chat_id):
                detail = await self.call(
                    lambda md: c.chats.get_chat(pb.ChatRequest(chat_id=chat_id), metadata=md)
                )
                members = tuple(wire.person(u) for u in detail.members)
                self.dispatch(a.MembersLoaded(chat_id, members))
            case fx.Send(line=line):
                if self.live is not None:
                    with contextlib.suppress(Exception):  # kept in the outbox regardless
                        await self.live.send(line.chat_id, line.text, line.client_message_id)
            case fx.CreateRoom(name=name):
                create = pb.CreateRoomRequest(name=name, request_id=new_request_id())
                room = await self.act(lambda md: c.chats.create_room(create, metadata=md))
                self.dispatch(a.ChatJoined(wire.chat(room)))
                self.dispatch(a.OpenChat(room.id))
                self.dispatch(a.Notice(f"created room {room.name}; /invite USER to add people"))
            case fx.InviteToRoom(chat_id=chat_id, username=username):
                user = await self._find(username)
                if user is not None:
                    request = pb.RoomInviteRequest(
                        chat_id=chat_id, user_id=user.id, request_id=new_request_id()
                    )
                    await self.act(lambda md: c.invites.invite_to_room(request, metadata=md))
                    self.dispatch(a.Notice(f"invited {user.username}"))
            case fx.InviteToDirect(username=username):
                user = await self._find(username)
                if user is not None:
                    direct = pb.DirectInviteRequest(user_id=user.id, request_id=new_request_id())
                    await self.act(lambda md: c.invites.invite_to_direct(direct, metadata=md))
                    self.dispatch(a.Notice(f"invited {user.username} to a personal conversation"))
            case fx.AnswerInvite(invite_id=invite_id, accept=accept):
                answering = pb.AnswerInviteRequest(
                    invite_id=invite_id, accept=accept, request_id=new_request_id()
                )
                answer = await self.act(lambda md: c.invites.answer_invite(answering, metadata=md))
                joined = wire.chat(answer.chat) if answer.chat else None
                me = c.user.username
                self.dispatch(a.InviteAnswered(invite_id, accept, True, joined, me))
                if joined is not None:
                    self.dispatch(a.OpenChat(joined.id))
            case fx.LeaveChat(chat_id=chat_id):
                await self.call(
                    lambda md: c.chats.leave_chat(pb.ChatRequest(chat_id=chat_id), metadata=md)
                )
                self.dispatch(a.ChatLeft(chat_id))
            case fx.SearchUsers(request=number, query=query):
                await asyncio.sleep(SEARCH_DEBOUNCE)
                if self.store.state.search.request != number:
                    return  # typing went on: a newer request replaces this one
                request = pb.SearchUsersRequest(query=query, limit=20)
                found = await self.call(lambda md: c.users.search_users(request, metadata=md))
                results = tuple(wire.person(u) for u in found.users)
                self.dispatch(a.SearchResults(number, results))
            case fx.MarkRead(chat_id=chat_id, message_id=message_id):
                request = pb.MarkReadRequest(chat_id=chat_id, message_id=message_id)
                with contextlib.suppress(GRPCError, OSError, StreamTerminatedError):
                    await self.call(lambda md: c.chats.mark_read(request, metadata=md))
            case fx.SignOut():
                with contextlib.suppress(GRPCError, OSError, StreamTerminatedError):
                    await c.accounts.sign_out(pb.SignOutRequest(), metadata=c.metadata)
                self._signed_out("signed out")
            case fx.Bell():
                self.on_bell()
            case fx.ExpireNotice(serial=serial, after=after):
                await asyncio.sleep(after)
                self.dispatch(a.NoticeExpired(serial))
            case fx.Quit():
                self.on_quit()

    async def _find(self, username: str) -> pb.User | None:
        request = pb.SearchUsersRequest(query=username, limit=5)
        found = await self.call(lambda md: self.client.users.search_users(request, metadata=md))
        for user in found.users:
            if user.username == username.lower():
                return user
        self.dispatch(a.Failed(f"no user named {username}"))
        return None

    # ---- the live stream -------------------------------------------------

    def _start_stream(self) -> None:
        if self._stream_task is None or self._stream_task.done():
            # A stream stopped by sign-out finishes its cancellation in the
            # background; being in _tasks, close() still waits for it.
            self._stream_task = self.spawn(self._stream_loop())

    def _stop_stream(self) -> None:
        if self._stream_task is not None:
            self._stream_task.cancel()
            self._stream_task = None
        self.live = None

    def reconnect_now(self) -> None:
        self._wake.set()

    async def _stream_loop(self) -> None:
        attempt = 0
        while self.client.tokens is not None:
            link = Link.CONNECTING if attempt == 0 else Link.RECONNECTING
            self.dispatch(a.ConnectionChanged(Connection(link)))
            try:
                await self._stream_once()
                attempt = 0
                detail = "the server ended the stream"
            except asyncio.CancelledError:
                raise
            except GRPCError as error:
                if error.status is Status.UNAUTHENTICATED:
                    try:
                        await self._refresh()
                        continue
                    except (GRPCError, OSError, StreamTerminatedError):
                        if self.client.tokens is None:
                            return
                detail = describe(error)
            except Exception as error:
                detail = describe(error)
            self.live = None
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            await self._count_down(delay, detail)

    async def _count_down(self, delay: float, detail: str) -> None:
        self._wake.clear()
        left = delay
        while left > 0:
            self.dispatch(a.ConnectionChanged(Connection(Link.RECONNECTING, left, detail)))
            step = min(1.0, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
                return
            left -= step

    async def _stream_once(self) -> None:
        state = self.store.state
        # Resume from the newest message known per chat: no gap, no duplicate.
        cursors = {chat.id: chat.last_message_id for chat in state.chats}
        me = self.client.user.id
        async with self.client.session(cursors) as live:
            self.live = live
            if me == 0 and live.ready is not None and live.ready.user is not None:
                # Started offline from a saved session: now we know who we are.
                assert self.client.tokens is not None
                self.client.tokens.user = live.ready.user
                me = live.ready.user.id
                self.dispatch(a.SignedIn(wire.person(live.ready.user)))
            self.dispatch(a.ConnectionChanged(Connection(Link.CONNECTED)))
            for frame in live.backlog:
                self._frame(frame, me)
            self.spawn(self.run(fx.LoadChats()))
            # Messages typed while offline go out now, once each (same ids).
            for line in self.store.state.outbox:
                await live.send(line.chat_id, line.text, line.client_message_id)
            while (frame := await live.recv()) is not None:
                self._frame(frame, me)

    def _frame(self, frame: pb.ServerFrame, me: int) -> None:
        action = wire.action(frame, me)
        if action is not None:
            self.dispatch(action)
