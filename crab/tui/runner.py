"""The runner: the only client code that does I/O. It runs each effect as a
task, by the handler the table names (crab/tui/effect_handlers.py), and owns
the account (tokens and the saved session: crab/tui/account.py) and the live
link (the session stream: crab/tui/link.py). close() ends all of it."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import StreamTerminatedError

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.account import Account
from crab.tui.effect_handlers import HANDLERS
from crab.tui.from_server import describe, person
from crab.tui.link import LiveLink
from crab.tui.saved import SessionFile, SettingsFile
from crab.tui.store import Store

if TYPE_CHECKING:
    from crab.calls.sources import Devices
    from crab.tui.call_media import CallMedia

log = logging.getLogger(__name__)
T = TypeVar("T")

WARM_CALLS_AFTER = 1.0  # seconds after sign-in: the chats are drawn by then
CLOSE_TIMEOUT = 2.0  # seconds for the tasks to finish when crab chat closes
# Pauses before an action (create, invite, answer) is tried again after
# UNAVAILABLE or a lost connection, with the same request id.
ACTION_RETRIES = (1.0, 2.0, 4.0)


class Runner:
    def __init__(
        self,
        store: Store,
        client: CrabClient,
        sessions: SessionFile,
        server: str,
        on_quit: Callable[[], None],
        on_bell: Callable[[], None],
        settings: SettingsFile,
        on_notify: Callable[[str, str], None] = lambda title, body: None,
        on_terminal: Callable[[str], None] = lambda sequence: None,
        devices: tuple[str, str, str] = ("", "", ""),
        on_video: Callable[[int, Any], None] = lambda user_id, frame: None,
    ) -> None:
        self.store = store
        # The device flow on its way (Esc cancels its task).
        self.device_flow: asyncio.Task[Any] | None = None
        self.on_notify = on_notify
        self.on_terminal = on_terminal  # writes an escape sequence to the terminal
        self.settings = settings
        self.client = client
        self.server = server
        self.on_quit = on_quit
        self.on_bell = on_bell
        self.account = Account(client, sessions, server, on_signed_out=self.signed_out)
        self.link = LiveLink(store, self.account, self.spawn, on_ready=self._reload_chats)
        # Chat id -> the newest message read and not yet told (effect_handlers.mark_read).
        self.read_marks: dict[int, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Calls: the devices chosen (--mic, --speaker, --camera), where
        # pictures go (the video pane), and my media once a call needs it.
        self.devices = devices
        self.on_video = on_video
        self._media: CallMedia | None = None
        self._media_missing = False

    # ---- tasks -----------------------------------------------------------

    def __call__(self, effect: fx.Effect) -> None:
        self.spawn(lambda: self.run(effect))

    def spawn(self, work: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """Runs `work()` as a task that close() cancels and waits for (so no
        task is left pending, or with an exception nobody retrieves)."""
        task = asyncio.ensure_future(self._task(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _task(self, work: Callable[[], Awaitable[T]]) -> T:
        # Every task of the client runs in this method, so one look at
        # asyncio.all_tasks() tells them apart (tests check none is left).
        # `work()` is called here, once the task runs: a task cancelled
        # before its start leaves no coroutine that was never awaited.
        return await work()

    def call_media(self) -> CallMedia | None:
        """My call media, made on first use; None without the calls extra."""
        if self._media is None and not self._media_missing:
            try:
                from crab.tui.call_media import CallMedia
            except ImportError:
                self._media_missing = True
                return None
            self._media = CallMedia(
                self.client.user.id,
                devices(*self.devices),
                self._send_signal,
                self.on_video,
                lambda call_id, user_id, state: self.dispatch(
                    a.CallLinkChanged(call_id, user_id, state)
                ),
                lambda call_id, levels, quality: self.dispatch(
                    a.CallLevels(call_id, levels, quality)
                ),
            )
        return self._media

    async def _send_signal(self, call_id: str, chat_id: int, to: int, kind: str, sdp: str) -> None:
        request = pb.CallRequest(
            op=pb.CallOp.SIGNAL,
            chat_id=chat_id,
            call_id=call_id,
            to_user_id=to,
            sdp_type=kind,
            sdp=sdp,
        )
        if not await self.link.call(request):
            self.dispatch(a.Notice("call: offline, the other side may not hear you"))

    async def close(self) -> None:
        if self._media is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._media.leave(), CLOSE_TIMEOUT)
        self.link.stop()
        for task in list(self._tasks):
            task.cancel()
        # Each leaves its call (the stream with RST_STREAM) before the channel
        # closes; a connection that stopped moving must not keep crab open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*self._tasks, return_exceptions=True), CLOSE_TIMEOUT
            )

    # ---- effects -----------------------------------------------------------

    async def run(self, effect: fx.Effect) -> None:
        try:
            await HANDLERS[type(effect)](self, effect)
        except asyncio.CancelledError:
            raise
        except GRPCError as error:
            self.dispatch(a.Failed(describe(error)))
        except (OSError, StreamTerminatedError, ConnectionError):
            self.dispatch(a.Failed("offline: the server cannot be reached"))
        except Exception as error:  # an effect must never take the app down
            log.exception("effect %r failed", effect)
            self.dispatch(a.Failed(describe(error)))

    def dispatch(self, action: a.Action) -> None:
        self.store.dispatch(action)

    async def call(self, rpc: Callable[[], Awaitable[T]]) -> T:
        """An RPC with the current token; an expired token is refreshed once."""
        return await self.account.call(rpc)

    async def act(self, rpc: Callable[[], Awaitable[T]]) -> T:
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

    # ---- signed in, signed out ---------------------------------------------

    async def resume_saved(self) -> bool:
        """Opens straight into the chats when this server's session was saved."""
        saved = self.account.restore()
        if saved is None:
            return False
        try:
            me = await self.call(self.client.who_am_i)
        except GRPCError:
            self.signed_out("your saved session has ended; sign in again")
            return False
        except (OSError, StreamTerminatedError):
            # Server unreachable: still open the chats and keep trying.
            me = pb.User(username=saved.username)
        assert self.client.tokens is not None  # restored above
        self.client.tokens.user = me
        self.signed_in(me)
        return True

    def signed_in(self, me: pb.User) -> None:
        self.dispatch(a.SignedIn(person(me)))
        self.link.start()
        self.spawn(self._warm_calls)

    async def _warm_calls(self) -> None:
        """The media stack (aiortc, PyAV, numpy: ~250 ms of imports) loaded
        in a thread while nobody waits, not when the first call rings."""
        await asyncio.sleep(WARM_CALLS_AFTER)
        with contextlib.suppress(ImportError):
            await asyncio.to_thread(importlib.import_module, "crab.tui.call_media")

    def signed_out(self, reason: str) -> None:
        self.account.forget()
        self.link.stop()
        self.dispatch(a.SignedOut(reason))

    def _reload_chats(self) -> None:
        self(fx.LoadChats())


def devices(mic: str, speaker: str, camera: str) -> Devices:
    """The devices chosen; each one not named keeps its default."""
    from crab.calls.sources import Devices

    chosen = {"mic": mic, "speaker": speaker, "camera": camera}
    return Devices(**{name: value for name, value in chosen.items() if value})
