"""Call signalling through a real server and real session streams
(docs/calls.md): ring, answer, SDP to the one session in the call, hang up,
decline, missed, a dropped stream, and what strangers and garbage get."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.config import CallSettings, Rate, Settings
from crab.core.app import Crab
from crab.core.services.rate_limit import RateLimiter
from crab.proto.crab import v1 as pb
from tests.helpers.chats import join, join_room
from tests.helpers.server import PASSWORD, ClientFactory, make_settings

OP = pb.CallOp
STATUS = pb.CallStatus
MEMBER = pb.CallMemberState
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = make_settings(tmp_path)
    calls = CallSettings(turn_urls=("turn:127.0.0.1:3478",), turn_secret="s3cret")
    limits = dataclasses.replace(base.limits, ring_timeout=30.0, call_grace=0.3)
    return dataclasses.replace(base, calls=calls, limits=limits)


@dataclass
class Pair:
    alice: CrabClient
    bob: CrabClient
    carol: CrabClient  # not in the chat
    chat: int


@pytest.fixture
async def pair(connect: ClientFactory) -> Pair:
    alice, bob, carol = [await connect(n) for n in ("alice", "bob", "carol")]
    return Pair(alice, bob, carol, await join_room(alice, bob))


def call_frame(status: pb.CallStatus) -> Callable[[pb.ServerFrame], bool]:
    return lambda f: f.call is not None and f.call.status == status


def state_of(call: pb.Call, user_id: int) -> pb.CallMemberState:
    return next(m.state for m in call.members if m.user is not None and m.user.id == user_id)


def error_frame(f: pb.ServerFrame) -> bool:
    return f.call_error is not None


async def start(s: SessionStream, chat: int, video: bool = True) -> pb.Call:
    await s.call(pb.CallRequest(op=OP.START, chat_id=chat, video=video))
    frame = await s.wait_for(lambda f: f.call is not None or f.call_error is not None)
    assert frame.call is not None, frame.call_error
    return frame.call


def sdp(chat: int, call: pb.Call, to: CrabClient, kind: str, text: str) -> pb.CallRequest:
    """An SDP signal for `to` in the call."""
    return pb.CallRequest(
        op=OP.SIGNAL, chat_id=chat, call_id=call.id, to_user_id=to.user.id, sdp_type=kind, sdp=text
    )


async def act(s: SessionStream, op: pb.CallOp, call: pb.Call) -> None:
    await s.call(pb.CallRequest(op=op, chat_id=call.chat_id, call_id=call.id))


async def error_for(s: SessionStream, request: pb.CallRequest) -> pb.CallError:
    await s.call(request)
    frame = await s.wait_for(error_frame)
    assert frame.call_error is not None
    return frame.call_error


async def test_a_call_rings_connects_carries_sdp_and_ends_with_a_line(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob
    async with alice.session() as a, bob.session() as b:
        call = await start(a, pair.chat)
        assert call.status == STATUS.RINGING and call.video
        assert state_of(call, alice.user.id) == MEMBER.JOINED
        rung = (await b.wait_for(call_frame(STATUS.RINGING))).call
        assert rung is not None and rung.id == call.id
        assert state_of(rung, bob.user.id) == MEMBER.RINGING
        # Bob's own short-lived TURN credentials: "<expiry>:<his id>".
        (turn,) = rung.ice_servers
        assert turn.urls == ["turn:127.0.0.1:3478"]
        assert turn.username.endswith(f":{bob.user.id}") and turn.credential

        await act(b, OP.ACCEPT, call)
        active = (await a.wait_for(call_frame(STATUS.ACTIVE))).call
        assert active is not None and state_of(active, bob.user.id) == MEMBER.JOINED
        await b.wait_for(call_frame(STATUS.ACTIVE))

        await a.call(sdp(pair.chat, call, bob, "offer", OFFER))
        signal = (await b.wait_for(lambda f: f.call_signal is not None)).call_signal
        assert signal is not None and signal.sdp == OFFER and signal.sdp_type == "offer"
        assert signal.from_ is not None and signal.from_.id == alice.user.id
        await b.call(sdp(pair.chat, call, alice, "answer", OFFER + "a=x\r\n"))
        back = (await a.wait_for(lambda f: f.call_signal is not None)).call_signal
        assert back is not None and back.sdp_type == "answer"

        await act(a, OP.LEAVE, call)
        ended = (await b.wait_for(call_frame(STATUS.ENDED))).call
        assert ended is not None and ended.end_reason == "hung up"
        note = (await b.wait_for(lambda f: f.message is not None and f.message.call_note)).message
        assert note is not None and note.text.startswith("video call · ")
        assert note.sender is not None and note.sender.id == alice.user.id


async def test_declined_and_missed_calls_leave_their_lines(pair: Pair, crab: Crab) -> None:
    alice, bob = pair.alice, pair.bob
    async with alice.session() as a, bob.session() as b:
        call = await start(a, pair.chat, video=False)
        await b.wait_for(call_frame(STATUS.RINGING))
        await act(b, OP.DECLINE, call)
        ended = (await a.wait_for(call_frame(STATUS.ENDED))).call
        assert ended is not None and ended.end_reason == "declined"
        note = (await a.wait_for(lambda f: f.message is not None and f.message.call_note)).message
        assert note is not None and note.text == "declined call"

    # Nobody answers: the ring times out and bob missed it.
    crab.hub.phone._limits = dataclasses.replace(crab.hub.phone._limits, ring_timeout=0.2)
    async with alice.session() as a:
        call = await start(a, pair.chat, video=False)
        ended = (await a.wait_for(call_frame(STATUS.ENDED))).call
        assert ended is not None and ended.end_reason == "missed"
        assert state_of(ended, bob.user.id) == MEMBER.MISSED
        note = (await a.wait_for(lambda f: f.message is not None and f.message.call_note)).message
        assert note is not None and note.text == "missed call"
    # Bob, offline the whole time, finds the line in the history; nobody edits it.
    page = await bob.history(pair.chat)
    assert page.messages[0].call_note and page.messages[0].text == "missed call"
    with pytest.raises(Exception, match="call's line cannot be edited"):
        await alice.edit_message(pair.chat, page.messages[0].id, "forged")


async def test_answering_on_one_device_silences_the_others_and_only_it_gets_sdp(
    pair: Pair, connect: ClientFactory
) -> None:
    alice, bob = pair.alice, pair.bob
    phone = await connect("phone", sign_up=False)
    await phone.sign_in(bob.user.username, PASSWORD)
    async with alice.session() as a, bob.session() as b, phone.session() as p:
        call = await start(a, pair.chat)
        await b.wait_for(call_frame(STATUS.RINGING))
        await p.wait_for(call_frame(STATUS.RINGING))
        await act(p, OP.ACCEPT, call)
        # Bob's laptop learns he is in the call (elsewhere): it stops ringing.
        seen = (await b.wait_for(call_frame(STATUS.ACTIVE))).call
        assert seen is not None and state_of(seen, bob.user.id) == MEMBER.JOINED
        assert not seen.here  # ...on the phone, not here
        on_phone = (await p.wait_for(call_frame(STATUS.ACTIVE))).call
        assert on_phone is not None and on_phone.here
        await a.call(sdp(pair.chat, call, bob, "offer", OFFER))
        await p.wait_for(lambda f: f.call_signal is not None)
        # The laptop never gets the offer; it also cannot hang up the phone's call.
        await a.send(pair.chat, "marker")
        seen_signal = []

        def marker(f: pb.ServerFrame) -> bool:
            seen_signal.append(f.call_signal is not None)
            return f.message is not None and f.message.text == "marker"

        await b.wait_for(marker)
        assert not any(seen_signal)
        await act(b, OP.LEAVE, call)
        await act(a, OP.LEAVE, call)
        ended = (await p.wait_for(call_frame(STATUS.ENDED))).call
        assert ended is not None and ended.end_reason == "hung up"


async def test_a_dropped_stream_leaves_the_call_after_the_grace(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob
    async with alice.session() as a:
        async with bob.session() as b:
            call = await start(a, pair.chat)
            await b.wait_for(call_frame(STATUS.RINGING))
            await act(b, OP.ACCEPT, call)
            await a.wait_for(call_frame(STATUS.ACTIVE))
        # Bob's stream is gone and does not come back within call_grace.
        ended = (await a.wait_for(call_frame(STATUS.ENDED))).call
        assert ended is not None and ended.end_reason == "dropped"


async def test_a_stream_back_within_the_grace_stays_in_the_call(pair: Pair, crab: Crab) -> None:
    crab.hub.phone._limits = dataclasses.replace(crab.hub.phone._limits, call_grace=1.5)
    alice, bob = pair.alice, pair.bob
    async with alice.session() as a:
        async with bob.session() as b:
            call = await start(a, pair.chat)
            await b.wait_for(call_frame(STATUS.RINGING))
            await act(b, OP.ACCEPT, call)
            await a.wait_for(call_frame(STATUS.ACTIVE))
        # Bob's link blips; his client is back at once, and is told the call.
        async with bob.session() as b:
            back = (await b.wait_for(lambda f: f.call is not None)).call
            assert back is not None and state_of(back, bob.user.id) == MEMBER.JOINED
            assert back.here  # his client starts its media again
            # Past the grace, the call goes on: the drop's leave found him back.
            await a.send(pair.chat, "still there?")
            await b.wait_for(lambda f: f.message is not None and f.message.text == "still there?")
            await asyncio.sleep(2.0)  # the grace's timer has run by now
            await act(a, OP.LEAVE, call)
            ended = (await b.wait_for(call_frame(STATUS.ENDED))).call
            assert ended is not None and ended.end_reason == "hung up"


async def test_a_session_that_starts_during_a_ring_is_rung(pair: Pair) -> None:
    async with pair.alice.session() as a:
        call = await start(a, pair.chat)
        async with pair.bob.session() as b:
            rung = (await b.wait_for(lambda f: f.call is not None)).call
            assert rung is not None and rung.id == call.id
            assert state_of(rung, pair.bob.user.id) == MEMBER.RINGING
            await act(b, OP.DECLINE, call)
            await a.wait_for(call_frame(STATUS.ENDED))


async def test_strangers_and_garbage_get_clear_errors(pair: Pair) -> None:
    alice, bob, carol = pair.alice, pair.bob, pair.carol
    async with alice.session() as a, bob.session() as b, carol.session() as c:
        # A stranger cannot ring the chat, nor signal into its call.
        err = await error_for(c, pb.CallRequest(op=OP.START, chat_id=pair.chat))
        assert err.code == "NOT_FOUND"
        call = await start(a, pair.chat)
        for op in (OP.ACCEPT, OP.DECLINE, OP.LEAVE):
            err = await error_for(c, pb.CallRequest(op=op, chat_id=pair.chat, call_id=call.id))
            assert err.code == "NOT_FOUND", op
        signal = sdp(pair.chat, call, alice, "offer", OFFER)
        assert (await error_for(c, signal)).code == "NOT_FOUND"
        # Bob, ringing but not in it, may not signal yet.
        assert (await error_for(b, signal)).code == "FAILED_PRECONDITION"
        bad = [
            pb.CallRequest(op=OP.UNSPECIFIED, chat_id=pair.chat, call_id=call.id),
            pb.CallRequest(op=OP.ACCEPT, chat_id=pair.chat, call_id=""),
            pb.CallRequest(op=OP.ACCEPT, chat_id=pair.chat, call_id="x" * 33),
            pb.CallRequest(op=OP.ACCEPT, chat_id=pair.chat, call_id="../etc"),
            dataclasses.replace(signal, sdp_type="pranswer"),
            dataclasses.replace(signal, sdp=""),
            dataclasses.replace(signal, sdp="a" * (16 * 1024 + 1)),
            dataclasses.replace(signal, sdp="v=0\x00"),
            dataclasses.replace(signal, to_user_id=alice.user.id, sdp_type="answer"),
        ]
        for request in bad:
            sender = a if request.to_user_id == alice.user.id and request.op == OP.SIGNAL else b
            err = await error_for(sender, request)
            assert err.code == "INVALID_ARGUMENT", (request, err)
        # Ids at the wire's edges: unknown, not a crash.
        err = await error_for(b, pb.CallRequest(op=OP.ACCEPT, chat_id=2**63 - 1, call_id="f" * 32))
        assert err.code == "NOT_FOUND"
        # Alice is in this call: she cannot start another elsewhere.
        other = await join_room(alice, carol, "side")
        err = await error_for(a, pb.CallRequest(op=OP.START, chat_id=other))
        assert err.code == "FAILED_PRECONDITION" and "another call" in err.message
        # A client cannot forge a call's line.
        cid = await a.send(pair.chat, "fake", client_message_id="call:abc")
        sent = await a.wait_for(lambda f: f.send_error is not None)
        assert sent.send_error is not None and sent.send_error.client_message_id == cid
        assert sent.send_error.code == "INVALID_ARGUMENT"
        # The stream lives on through all of it.
        await act(b, OP.ACCEPT, call)
        await a.wait_for(call_frame(STATUS.ACTIVE))


async def test_a_chat_bigger_than_the_mesh_needs_an_sfu(connect: ClientFactory, crab: Crab) -> None:
    crab.hub.phone._limits = dataclasses.replace(crab.hub.phone._limits, mesh_max=2)
    alice, bob, carol = [await connect(n) for n in ("alice", "bob", "carol")]
    chat = await join_room(alice, bob)
    room = next(c.chat for c in await alice.my_chats() if c.chat and c.chat.id == chat)
    assert room is not None
    await join(alice, carol, room)
    async with alice.session() as a:
        err = await error_for(a, pb.CallRequest(op=OP.START, chat_id=chat))
        assert err.code == "FAILED_PRECONDITION" and "--sfu-url" in err.message


async def test_call_actions_are_rate_limited(pair: Pair, crab: Crab) -> None:
    crab.hub.phone._actions = RateLimiter.of(Rate(3, 60), "call actions by you")
    async with pair.alice.session() as a:
        codes = []
        for _ in range(5):
            await a.call(pb.CallRequest(op=OP.LEAVE, chat_id=pair.chat, call_id="f" * 32))
            codes.append((await a.wait_for(error_frame)).call_error.code)  # type: ignore[union-attr]
        assert codes == ["NOT_FOUND"] * 3 + ["RESOURCE_EXHAUSTED"] * 2
    # Out of tokens, someone in a call can still hang up: the others see it end.
    crab.hub.phone._actions = RateLimiter.of(Rate(100, 60), "call actions by you")
    async with pair.alice.session() as a, pair.bob.session() as b:
        call = await start(a, pair.chat)
        await b.wait_for(call_frame(STATUS.RINGING))
        await act(b, OP.ACCEPT, call)
        await a.wait_for(call_frame(STATUS.ACTIVE))
        crab.hub.phone._actions = RateLimiter.of(Rate(1, 3600), "call actions by you")
        crab.hub.phone._actions.take(pair.alice.user.id)  # her last token
        await act(a, OP.LEAVE, call)
        ended = (await b.wait_for(call_frame(STATUS.ENDED))).call
        assert ended is not None and ended.end_reason == "hung up"
