"""Calls: ringing, answering, hanging up, and carrying SDP between the
participants (docs/calls.md). Signalling only: media goes peer to peer (a
mesh, up to `mesh_max` people) or through the SFU; the server never sees it.

The request side (`Phone`, one per server process: checks, rate limits,
timers) and the worker's handlers (`handle_*`, in its transaction) are both
here. Every change of a call is stored and published to the chat's members
as the call as it is now (ev.CallChanged); SDP goes straight to the one
session of the other participant that is in the call (ev.CallSignalled),
never stored.

Rules: only members of the chat see or touch its calls (NOT_FOUND
otherwise); a chat has one call at a time, and /call while one goes on joins
it; a person is in one call at a time; a call ends when nobody is left to
talk to, and leaves a line in the chat ("call · 12 min", "missed call")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from crab.config import CallSettings, Limits
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import (
    CALL_NOTE_PREFIX,
    Call,
    Caller,
    CallMember,
    CallMemberState,
    CallStatus,
)
from crab.core.services.messages import store_sends
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.turn import IceServer, ice_servers, janus_token
from crab.core.storage import calls as call_store
from crab.core.storage import chats
from crab.core.storage.database import Database
from crab.errors import CrabError, FailedPrecondition, InvalidArgument, NotFound

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 16 * 1024  # an aiortc offer with audio and video is ~3-5 KiB
SDP_TYPES = ("offer", "answer")
MAX_CALL_ID_CHARS = 32
MAX_TIMERS = 10_000  # ring timeouts and drop graces pending in one process


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A client's call frame, as the domain sees it (api/session.py)."""

    op: str  # "start" | "accept" | "decline" | "leave" | "signal"
    chat_id: int
    call_id: str = ""
    video: bool = False
    to_user_id: int = 0
    sdp_type: str = ""
    sdp: str = ""


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The answer to a call frame that was refused (ServerFrame.call_error)."""

    call_id: str
    chat_id: int
    error: CrabError


@dataclass(frozen=True, slots=True)
class CallView:
    """A call as one member sees it: with their own ICE servers."""

    call: Call
    ice_servers: tuple[IceServer, ...] = ()
    sfu_url: str = ""
    sfu_token: str = ""
    relay_only: bool = False
    here: bool = False  # the stream it goes to is the one of theirs in the call


class Phone:
    def __init__(
        self, database: Database, broker: Broker, limits: Limits, settings: CallSettings
    ) -> None:
        self._database = database
        self._broker = broker
        self._limits = limits
        self._settings = settings
        self._actions = RateLimiter.of(limits.calls_per_user, "call actions by you")
        self._signals = RateLimiter.of(limits.call_signals_per_user, "call signals by you")
        self._timers: set[asyncio.Task[None]] = set()

    # ---- what a member sees ----------------------------------------------

    def view(self, call: Call, user_id: int, here: bool = False) -> CallView:
        """The call with this member's own credentials (while ringing or in
        it): TURN for the ICE servers, a signed token for the SFU."""
        s = self._settings
        member = call.member(user_id)
        servers: tuple[IceServer, ...] = ()
        token = ""
        if member is not None and member.state in (CallMemberState.RINGING, CallMemberState.JOINED):
            now = time.time()
            servers = tuple(
                ice_servers(s.turn_urls, s.stun_urls, s.turn_secret, user_id, s.turn_ttl, now)
            )
            if call.sfu_room and s.sfu_secret:
                token = janus_token(s.sfu_secret, int(now + s.turn_ttl))
        sfu_url = s.sfu_url if call.sfu_room else ""
        return CallView(call, servers, sfu_url, token, s.relay_only, here)

    # ---- a client's call frame -------------------------------------------

    async def request(self, caller: Caller, request: CallRequest, in_call: bool = False) -> None:
        """Raises the refusal (the session answers it with a CallError).
        `in_call`: the asking stream is in this call, whose hang-up is never
        refused by the rate limit (a client that forgot the call must not
        leave the others with someone who can no longer leave)."""
        if request.op == "signal":
            await self._signal(caller, request)
            return
        if request.op != "start":
            _check_call_id(request.call_id)
        if not (in_call and request.op == "leave"):
            self._actions.take(caller.user_id)
        match request.op:
            case "start":
                await self._start(caller, request)
            case "accept" | "decline":
                await self._broker.request(
                    cmd.AnswerCall(
                        caller.user_id,
                        caller.session_id,
                        request.chat_id,
                        request.call_id,
                        request.op == "accept",
                        _request_id(),
                    )
                )
            case "leave":
                await self._broker.request(
                    cmd.LeaveCall(
                        caller.user_id,
                        request.chat_id,
                        request.call_id,
                        caller.session_id,
                        "hung up",
                        _request_id(),
                    )
                )
            case _:
                raise InvalidArgument(f"unknown call action {request.op!r}")

    async def _start(self, caller: Caller, request: CallRequest) -> None:
        sfu_room, sfu_pin = 0, ""
        if self._settings.sfu_url:
            # A room no one can guess, and a pin only the chat's members get.
            sfu_room, sfu_pin = secrets.randbelow(2**52) + 1, secrets.token_urlsafe(16)
        call = await self._broker.request(
            cmd.StartCall(
                caller.user_id,
                caller.session_id,
                request.chat_id,
                uuid.uuid4().hex,
                request.video,
                self._limits.mesh_max,
                sfu_room,
                sfu_pin,
                _request_id(),
            )
        )
        if call.status == CallStatus.RINGING and call.started_by.id == caller.user_id:
            self._later(self._limits.ring_timeout, self._stop_ringing, call)

    async def _signal(self, caller: Caller, request: CallRequest) -> None:
        _check_call_id(request.call_id)
        if request.sdp_type not in SDP_TYPES:
            raise InvalidArgument("sdp_type must be 'offer' or 'answer'")
        if not request.sdp or len(request.sdp.encode()) > MAX_SDP_BYTES:
            raise InvalidArgument(f"sdp must be 1 to {MAX_SDP_BYTES} bytes")
        if "\x00" in request.sdp:
            raise InvalidArgument("sdp must be text")
        if request.to_user_id == caller.user_id:
            raise InvalidArgument("a signal goes to another participant")
        self._signals.take(caller.user_id)
        call = await self._database.read(call_store.get, request.call_id)
        me = None if call is None else call.member(caller.user_id)
        if call is None or me is None or call.chat_id != request.chat_id:
            raise NotFound(f"call {request.call_id} not found")  # a stranger learns nothing
        if me.state != CallMemberState.JOINED or me.session_id != caller.session_id:
            raise FailedPrecondition("join the call before signalling in it")
        to = call.member(request.to_user_id)
        if to is None or to.state != CallMemberState.JOINED:
            raise FailedPrecondition(f"user {request.to_user_id} is not in this call")
        await self._broker.publish(
            ev.user_topic(to.user.id),
            ev.CallSignalled(
                call.id,
                call.chat_id,
                me.user,
                to.user.id,
                to.session_id,
                request.sdp_type,
                request.sdp,
            ),
        )

    # ---- timers: the ring that times out, the stream that dropped ----------

    def dropped(self, caller: Caller, calls: dict[str, int], back: Callable[[], bool]) -> None:
        """A session that was in these calls (call id -> chat id) ended; unless
        `back()` says it came back within the grace period, it leaves them."""
        for call_id, chat_id in calls.items():

            async def leave(call_id: str = call_id, chat_id: int = chat_id) -> None:
                if back():
                    return
                await self._broker.request(
                    cmd.LeaveCall(
                        caller.user_id,
                        chat_id,
                        call_id,
                        caller.session_id,
                        "dropped",
                        _request_id(),
                    )
                )

            self._later(self._limits.call_grace, leave)

    async def gone(self, user_ids: list[int]) -> None:
        """These users' process died (killed, no goodbye) and they are on no
        other: its grace timers died with it, so they leave their calls now
        (presence's expiry was their grace). Any process may ask: leaving
        twice changes nothing."""
        for user_id in user_ids:
            for call_id, chat_id in await self._database.read(call_store.joined_by, user_id):
                await self._broker.request(
                    cmd.LeaveCall(user_id, chat_id, call_id, 0, "dropped", _request_id())
                )

    async def _stop_ringing(self, call: Call) -> None:
        await self._broker.request(cmd.StopRinging(call.chat_id, call.id, _request_id()))

    def _later(self, delay: float, work: Callable[..., Awaitable[None]], *args: object) -> None:
        if len(self._timers) >= MAX_TIMERS:
            log.warning("too many call timers pending; one dropped")
            return

        async def run() -> None:
            await asyncio.sleep(delay)
            try:
                await work(*args)
            except CrabError as error:
                log.info("call timer: %s", error)
            except Exception:
                log.exception("call timer failed")

        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def close(self) -> None:
        for task in list(self._timers):
            task.cancel()
        for task in list(self._timers):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _check_call_id(call_id: str) -> None:
    if not call_id or len(call_id) > MAX_CALL_ID_CHARS or not call_id.isalnum():
        raise InvalidArgument(f"call_id must be 1 to {MAX_CALL_ID_CHARS} letters and digits")


def _request_id() -> str:
    return "call-" + uuid.uuid4().hex


# ---- the worker's handlers -------------------------------------------------


def handle_start(conn: Connection, c: cmd.StartCall, out: ev.Published) -> Call:
    if not chats.is_member(conn, c.chat_id, c.user_id):
        raise NotFound(f"chat {c.chat_id} not found")
    going = call_store.live_in_chat(conn, c.chat_id)
    if going is not None:  # /call while one goes on: join it
        in_it = [
            m for m in going.members if m.state in (CallMemberState.JOINED, CallMemberState.RINGING)
        ]
        if not going.sfu_room and going.member(c.user_id) is None and len(in_it) >= c.mesh_max:
            # Peer to peer, every newcomer costs everyone a link: mesh_max caps it.
            raise FailedPrecondition(
                f"this call is full: up to {c.mesh_max} people without an SFU; "
                "join when someone leaves"
            )
        return _join(conn, going, c.user_id, c.session_id, out)
    if call_store.in_other_call(conn, c.user_id, c.call_id):
        raise FailedPrecondition("you are in another call; hang up first")
    people = chats.member_users(conn, c.chat_id)
    if len(people) < 2:
        raise FailedPrecondition("nobody else is in this chat to call")
    sfu = bool(c.sfu_room) and len(people) > c.mesh_max
    if len(people) > c.mesh_max and not sfu:
        raise FailedPrecondition(
            f"calls are for up to {c.mesh_max} people without an SFU, and this chat has "
            f"{len(people)}; the server needs --sfu-url"
        )
    when = now()
    members = tuple(
        CallMember(u, CallMemberState.JOINED, c.session_id, when)
        if u.id == c.user_id
        else CallMember(u, CallMemberState.RINGING)
        for u in people
    )
    starter = next(u for u in people if u.id == c.user_id)
    call = Call(
        c.call_id,
        c.chat_id,
        starter,
        c.video,
        CallStatus.RINGING,
        members,
        when,
        sfu_room=c.sfu_room if sfu else 0,
        sfu_pin=c.sfu_pin if sfu else "",
    )
    call_store.insert(conn, call)
    return _changed(conn, call.id, out)


def handle_answer(conn: Connection, c: cmd.AnswerCall, out: ev.Published) -> Call:
    call = _found(conn, c.chat_id, c.call_id, c.user_id)
    if call.status == CallStatus.ENDED:
        raise FailedPrecondition("this call has ended")
    if c.accept:
        return _join(conn, call, c.user_id, c.session_id, out)
    me = call.member(c.user_id)
    if me is not None and me.state == CallMemberState.JOINED:
        raise FailedPrecondition("you are in this call; hang up instead")
    if me is None or me.state != CallMemberState.RINGING:
        return call  # not ringing for me (declined on another device): nothing to do
    call_store.set_member(conn, call.id, c.user_id, CallMemberState.DECLINED)
    return _settle(conn, call.id, "declined", out)


def handle_leave(conn: Connection, c: cmd.LeaveCall, out: ev.Published) -> Call:
    call = _found(conn, c.chat_id, c.call_id, c.user_id)
    if call.status == CallStatus.ENDED:
        return call  # already over: hanging up again changes nothing
    me = call.member(c.user_id)
    if me is None:
        return call
    if me.state == CallMemberState.RINGING:
        call_store.set_member(conn, call.id, c.user_id, CallMemberState.DECLINED)
    elif me.state == CallMemberState.JOINED and c.session_id in (0, me.session_id):
        call_store.set_member(conn, call.id, c.user_id, CallMemberState.LEFT)
    else:
        return call  # another of my sessions is in it now: it stays
    return _settle(conn, call.id, c.reason, out)


def handle_stop_ringing(conn: Connection, c: cmd.StopRinging, out: ev.Published) -> Call:
    call = call_store.get(conn, c.call_id, lock=True)
    if call is None or call.status == CallStatus.ENDED:
        raise NotFound(f"call {c.call_id} not found")
    for m in call.members:
        if m.state == CallMemberState.RINGING:
            call_store.set_member(conn, call.id, m.user.id, CallMemberState.MISSED)
    return _settle(conn, call.id, "missed", out)


def _found(conn: Connection, chat_id: int, call_id: str, user_id: int) -> Call:
    call = call_store.get(conn, call_id, lock=True)
    if call is None or call.chat_id != chat_id or not chats.is_member(conn, chat_id, user_id):
        raise NotFound(f"call {call_id} not found")
    return call


def _join(conn: Connection, call: Call, user_id: int, session_id: int, out: ev.Published) -> Call:
    if call_store.in_other_call(conn, user_id, call.id):
        raise FailedPrecondition("you are in another call; hang up first")
    when = now()
    if call.member(user_id) is None:  # joined the chat after the call started
        user = chats.member_user(conn, call.chat_id, user_id)
        call_store.add_member(
            conn, call.id, CallMember(user, CallMemberState.JOINED, session_id, when)
        )
    else:
        # Also a move: the same person answering on another device.
        call_store.set_member(conn, call.id, user_id, CallMemberState.JOINED, session_id, when)
    if call.status == CallStatus.RINGING and user_id != call.started_by.id:
        call_store.connect(conn, call.id, when)
    return _changed(conn, call.id, out)


def _settle(conn: Connection, call_id: str, reason: str, out: ev.Published) -> Call:
    """Ends the call when nobody is left to talk to: nobody in it, or one
    person with nobody ringing (or, before an answer, the caller gone)."""
    call = call_store.get(conn, call_id)
    assert call is not None
    joined = call.joined()
    ringing = any(m.state == CallMemberState.RINGING for m in call.members)
    if call.status == CallStatus.RINGING:
        over = not joined or not ringing
    else:
        over = not joined or (len(joined) == 1 and not ringing)
    if not over:
        return _changed(conn, call_id, out)
    if call.status == CallStatus.RINGING:
        everyone_declined = all(
            m.state == CallMemberState.DECLINED
            for m in call.members
            if m.user.id != call.started_by.id
        )
        reason = "declined" if everyone_declined else "missed"
    when = now()
    call_store.end(conn, call_id, when, reason)
    ended = _changed(conn, call_id, out)
    _note(conn, ended, out)  # after the call's end, as the members see it happen
    return ended


def _note(conn: Connection, call: Call, out: ev.Published) -> None:
    """The line an ended call leaves in its chat, from its starter (stored by
    the send rules: ids, unread counts, the event)."""
    kind = "video call" if call.video else "call"
    if call.connected_at is None or call.ended_at is None:
        text = f"{'declined' if call.end_reason == 'declined' else 'missed'} {kind}"
    else:
        seconds = int((call.ended_at - call.connected_at).total_seconds())
        text = f"{kind} · {duration(seconds)}"
    send = cmd.SendMessage(call.started_by.id, call.chat_id, CALL_NOTE_PREFIX + call.id, text)
    stored = store_sends(conn, [send])
    if stored.outcomes[0].error is None:  # the starter may have left the chat
        out.extend(stored.published)


def duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _changed(conn: Connection, call_id: str, out: ev.Published) -> Call:
    call = call_store.get(conn, call_id)
    assert call is not None
    out.append((ev.chat_topic(call.chat_id), ev.CallChanged(call)))
    return call
