"""Calls on the scaled shape (RabbitMQ, PostgreSQL, two API replicas, a
worker process): alice on replica 1, bob on replica 2. The call rings across
replicas, SDP goes both ways through both, a real media link (a tone each)
connects, the call ends with its line; and a replica killed with -9 mid-call."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crab.calls.ice import use_ice_hosts_from_env
from crab.calls.sources import Devices, LocalMedia
from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.calls import Recorder, make_link
from tests.helpers.chats import join_room
from tests.helpers.cluster import Cluster, join, via
from tests.helpers.process import LIFTED_LIMITS
from tests.helpers.proxy import TcpProxy
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)
from tests.integration.test_calls import OP, STATUS, act, call_frame, start

pytest.importorskip("aiortc")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

GRACE, HEARTBEAT, EXPIRY = 1.0, 0.5, 3.0


@pytest.fixture
def call_cluster(
    rabbitmq_url: str,  # noqa: F811
    amqp_link: TcpProxy,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """Two replicas with a short call grace and quick presence expiry."""
    env = {
        "CRAB_JWT_SECRET": secrets.token_urlsafe(32),
        **LIFTED_LIMITS,
        "CRAB_CALL_GRACE": str(GRACE),
        "CRAB_PRESENCE_HEARTBEAT": str(HEARTBEAT),
        "CRAB_PRESENCE_EXPIRY": str(EXPIRY),
    }
    found = Cluster(via(amqp_link.port, rabbitmq_url), database_url, tmp_path, env)
    try:
        found.start_api()
        found.start_api()
        found.start_worker()
        yield found
    finally:
        found.stop()


async def signal(s: SessionStream, call: pb.Call, to: int, sdp_type: str, sdp: str) -> None:
    await s.call(
        pb.CallRequest(
            op=OP.SIGNAL,
            chat_id=call.chat_id,
            call_id=call.id,
            to_user_id=to,
            sdp_type=sdp_type,
            sdp=sdp,
        )
    )


async def received_sdp(s: SessionStream, sdp_type: str) -> str:
    frame = await s.wait_for(
        lambda f: f.call_signal is not None and f.call_signal.sdp_type == sdp_type, timeout=30
    )
    assert frame.call_signal is not None
    return frame.call_signal.sdp


async def ring_and_answer(a: SessionStream, b: SessionStream, chat: int) -> pb.Call:
    call = await start(a, chat, video=False)
    rung = (await b.wait_for(call_frame(STATUS.RINGING), timeout=30)).call
    assert rung is not None and rung.id == call.id
    await act(b, OP.ACCEPT, call)
    await a.wait_for(call_frame(STATUS.ACTIVE), timeout=30)
    return call


async def test_a_call_across_replicas_connects_media_and_leaves_its_line(
    call_cluster: Cluster, clients: list[CrabClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    use_ice_hosts_from_env()
    one, two = call_cluster.apis
    alice = await join(one, "alice", clients)
    bob = await join(two, "bob", clients)
    chat = await join_room(alice, bob)
    mine, theirs = Recorder(), Recorder()
    a_media = LocalMedia(Devices(mic="sine:440", speaker="none"), video=False)
    b_media = LocalMedia(Devices(mic="sine:660", speaker="none"), video=False)
    a_link = make_link(bob.user.id, a_media, mine)
    b_link = make_link(alice.user.id, b_media, theirs)
    try:
        async with alice.session() as a, bob.session() as b:
            call = await ring_and_answer(a, b, chat)
            # SDP: alice (the smaller id) offers through replica 1, bob answers
            # through replica 2.
            await signal(a, call, bob.user.id, "offer", await a_link.offer())
            answer = await b_link.answer(await received_sdp(b, "offer"))
            await signal(b, call, alice.user.id, "answer", answer)
            await a_link.accept(await received_sdp(a, "answer"))
            await mine.until("alice's link connected", lambda: "connected" in mine.states, 30)
            await theirs.until("bob's link connected", lambda: "connected" in theirs.states, 30)
            await mine.until("bob's tone", lambda: any(v > 0.01 for v in mine.levels), 30)
            await theirs.until("alice's tone", lambda: any(v > 0.01 for v in theirs.levels), 30)

            await act(b, OP.LEAVE, call)
            ended = (await a.wait_for(call_frame(STATUS.ENDED), timeout=30)).call
            assert ended is not None and ended.end_reason == "hung up"
            note = await a.wait_for(lambda f: f.message is not None and f.message.call_note, 30)
            assert note.message is not None and note.message.text.startswith("call · ")
        history = await alice.history(chat)
        assert any(m.call_note and m.text.startswith("call · ") for m in history.messages)
    finally:
        for link in (a_link, b_link):
            await link.close()
        for media in (a_media, b_media):
            await media.close()


async def test_a_replica_killed_mid_call_ends_the_call_for_the_other(
    call_cluster: Cluster, clients: list[CrabClient]
) -> None:
    one, two = call_cluster.apis
    alice = await join(one, "alice", clients)
    bob = await join(two, "bob", clients)
    chat = await join_room(alice, bob)
    async with alice.session() as a:
        b = bob.session()
        await b.__aenter__()
        call = await ring_and_answer(a, b, chat)
        two.kill()  # bob's replica: no goodbye, and its grace timers die with it
        two.wait()
        killed = time.monotonic()
        # Replica 1 stops hearing its presence beats after EXPIRY: bob, on no
        # other replica, leaves his call then, which ends it (alice alone).
        ended = (await a.wait_for(call_frame(STATUS.ENDED), timeout=EXPIRY + 10)).call
        assert ended is not None and ended.id == call.id and ended.end_reason == "dropped"
        print(
            f"\nthe call ended {time.monotonic() - killed:.1f} s after the kill (expiry {EXPIRY} s)"
        )
        note = await a.wait_for(lambda f: f.message is not None and f.message.call_note, 10)
        assert note.message is not None and note.message.text.startswith("call · ")
