"""The same flows on the scaled shape: RabbitMQ, PostgreSQL, two API
replicas (`crab serve --no-worker`) and two workers (`crab worker`), each a
separate process; clients spread across the replicas."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.cluster import Cluster, join, via
from tests.helpers.proxy import TcpProxy
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def message_ids(frames: list[pb.ServerFrame]) -> list[int]:
    return [f.message.id for f in frames if f.message is not None]


async def ended_with(live: SessionStream, status: Status, timeout: float = 60) -> None:
    """Reads `live` until the server ends it; it must end with `status`."""
    with pytest.raises(GRPCError) as ended:
        await live.wait_for(lambda f: False, timeout)
    assert ended.value.status == status, ended.value


async def reopen(
    client: CrabClient,
    streams: contextlib.AsyncExitStack,
    cursors: dict[int, int] | None = None,
    timeout: float = 60,
) -> SessionStream:
    """A new session stream, resumed from `cursors`, tried again while the
    server answers UNAVAILABLE (as crab chat's reconnect loop does)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await streams.enter_async_context(client.session(cursors))
        except GRPCError as error:
            if error.status != Status.UNAVAILABLE:
                raise
            assert asyncio.get_running_loop().time() < deadline, error
            await asyncio.sleep(0.5)  # the client's back-off


async def test_live_across_replicas(cluster: Cluster, clients: list[CrabClient]) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    async with alice.session() as a_live, bob.session() as b_live:
        room = await alice.chats.create_room(
            pb.CreateRoomRequest(name="ops"), metadata=alice.metadata
        )
        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
        )
        got = await b_live.wait_for(lambda f: f.invite_received is not None)
        assert got.invite_received.id == invite.id  # sent through A, seen live on B
        await bob.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
        )
        joined = await b_live.wait_for(lambda f: f.chat_joined is not None)
        assert joined.chat_joined.id == room.id  # on Bob's already-open stream
        await a_live.wait_for(lambda f: f.invite_answered is not None)

        await a_live.send(room.id, "from A")
        got = await b_live.wait_for(lambda f: f.message is not None)
        assert got.message.text == "from A"
        await b_live.send(room.id, "from B")
        got = await a_live.wait_for(lambda f: f.message is not None and f.message.text == "from B")
        assert got.message.id == 2


async def test_killed_worker_loses_nothing_acknowledged(
    cluster: Cluster, clients: list[CrabClient]
) -> None:
    alice = await join(cluster.apis[0], "alice", clients)
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="load"), metadata=alice.metadata)
    acked: dict[str, int] = {}
    total = 300
    async with alice.session() as live:

        async def receive() -> None:
            while len(acked) < total:
                frame = await live.recv()
                assert frame is not None
                assert frame.send_error is None, frame.send_error
                if frame.ack is not None:
                    assert frame.ack.client_message_id not in acked, "acknowledged twice"
                    acked[frame.ack.client_message_id] = frame.ack.message.id
                    if len(acked) == 50:
                        cluster.workers[0].kill()  # mid-traffic, commands in its hands

        receiver = asyncio.create_task(receive())
        for i in range(total):
            await live.send(room.id, f"m{i}", client_message_id=f"c{i}")
        await asyncio.wait_for(receiver, 120)
    page_ids: list[int] = []
    texts: list[str] = []
    before = 0
    while True:
        page = await alice.chats.get_messages(
            pb.GetMessagesRequest(chat_id=room.id, before_id=before, limit=200),
            metadata=alice.metadata,
        )
        page_ids += [m.id for m in page.messages]
        texts += [m.text for m in page.messages]
        if not page.has_more:
            break
        before = page.messages[-1].id
    print(f"\nworker kill -9: sent {total}, acked {len(acked)}, stored {len(page_ids)}")
    assert sorted(page_ids) == list(range(1, total + 1))  # each stored once, gap-free
    assert sorted(texts) == sorted(f"m{i}" for i in range(total))
    assert sorted(acked.values()) == list(range(1, total + 1))


async def test_killed_replica_clients_resume_on_the_other(
    cluster: Cluster, clients: list[CrabClient]
) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(a, "bob", clients)  # both on A, which will die
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    invite = await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
    )
    await bob.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
    )
    seen: list[int] = []
    b_live: SessionStream
    async with bob.session() as b_live:
        async with alice.session() as a_live:
            for i in range(5):
                await a_live.send(room.id, f"before {i}")
            seen += message_ids(list(await b_live.collect(lambda f: f.message is not None, 5)))
        a.kill()
        with pytest.raises(Exception):  # noqa: B017 - any connection error will do
            await b_live.wait_for(lambda f: False, timeout=15)

    # Alice carries on through B; Bob moves to B and resumes from what he saw.
    alice_b = CrabClient("127.0.0.1", b.port)
    bob_b = CrabClient("127.0.0.1", b.port)
    clients += [alice_b, bob_b]
    alice_b.tokens, bob_b.tokens = alice.tokens, bob.tokens
    async with alice_b.session() as a_live:
        for i in range(5):
            await a_live.send(room.id, f"while moving {i}")
        await a_live.collect(lambda f: f.ack is not None, 5)
    async with bob_b.session({room.id: seen[-1]}) as b_live:
        replayed = message_ids(b_live.backlog)
        async with alice_b.session() as a_live:
            await a_live.send(room.id, "live again")
            got = await b_live.wait_for(lambda f: f.message is not None)
        assert seen + replayed + [got.message.id] == list(range(1, 12))


async def test_everyone_recovers_when_the_broker_link_drops(
    cluster: Cluster, amqp_link: TcpProxy, clients: list[CrabClient]
) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    invite = await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
    )
    await bob.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
    )
    async with contextlib.AsyncExitStack() as streams:
        a_live = await streams.enter_async_context(alice.session())
        b_live = await streams.enter_async_context(bob.session())
        await a_live.send(room.id, "before")
        assert (await b_live.wait_for(lambda f: f.message is not None)).message.id == 1

        assert await cluster.workers_healthy() == [True, True]
        amqp_link.cut()  # every replica and worker loses RabbitMQ at once
        # The workers' health service says so (it checks at most every 5 s).
        deadline = asyncio.get_running_loop().time() + 30
        while await cluster.workers_healthy() != [False, False]:
            assert asyncio.get_running_loop().time() < deadline, "workers still SERVING"
            await asyncio.sleep(0.5)  # the pace of a poll of the health service
        amqp_link.restore()

        # Robust connections come back with their queues, consumers and
        # bindings; events published meanwhile are gone, so each replica ends
        # its streams with UNAVAILABLE and the clients resume, as crab chat does.
        for old in (a_live, b_live):
            await ended_with(old, Status.UNAVAILABLE)
        a_live = await reopen(alice, streams, {room.id: 1})
        b_live = await reopen(bob, streams, {room.id: 1})

        # Until the replicas are wholly back, a send may answer UNAVAILABLE
        # ("try again"): the client sends it again with the same id.
        def answers_after(f: pb.ServerFrame) -> bool:
            answer = f.ack or f.send_error
            return answer is not None and answer.client_message_id == "after-1"

        ack = None
        deadline = asyncio.get_running_loop().time() + 120
        while ack is None and asyncio.get_running_loop().time() < deadline:
            await a_live.send(room.id, "after", client_message_id="after-1")
            frame = await a_live.wait_for(answers_after, 60)
            if frame.ack is not None:
                ack = frame.ack
            else:
                assert frame.send_error.code == "UNAVAILABLE", frame.send_error
                await asyncio.sleep(1)  # a client's retry back-off, as crab chat's
        assert ack is not None and ack.message.id == 2
        got = await b_live.wait_for(lambda f: f.message is not None, 30)
        assert (got.message.id, got.message.text) == (2, "after")
        deadline = asyncio.get_running_loop().time() + 30
        while await cluster.workers_healthy() != [True, True]:
            assert asyncio.get_running_loop().time() < deadline, "workers not SERVING again"
            await asyncio.sleep(0.5)  # the pace of a poll of the health service


@pytest.fixture
def replica_link(rabbitmq_url: str) -> Iterator[TcpProxy]:  # noqa: F811
    """One replica's own link to RabbitMQ, for a test to cut alone."""
    port = int(rabbitmq_url.rpartition("@")[2].partition("/")[0].rsplit(":", 1)[1])
    with TcpProxy(port) as proxy:
        yield proxy


@pytest.fixture
def split_cluster(
    rabbitmq_url: str,  # noqa: F811
    replica_link: TcpProxy,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """Replica A and the worker reach RabbitMQ directly; replica B through
    `replica_link`, so B alone can lose it while everything else works."""
    found = Cluster(
        rabbitmq_url, database_url, tmp_path, {"CRAB_JWT_SECRET": secrets.token_urlsafe(32)}
    )
    try:
        found.start_api()
        found.broker = via(replica_link.port, rabbitmq_url)
        found.start_api()
        found.broker = rabbitmq_url
        found.start_worker()
        yield found
    finally:
        found.stop()


async def test_events_lost_in_a_replicas_link_drop_reach_its_clients_after_they_resume(
    split_cluster: Cluster, replica_link: TcpProxy, clients: list[CrabClient]
) -> None:
    a, b = split_cluster.apis
    alice = await join(a, "alice", clients)  # the inviter, on the replica that keeps its link
    invitees = [await join(b, f"invitee{i}", clients) for i in range(5)]
    carol = await join(b, "carol", clients)  # signs out while B is cut off
    bob = await join(b, "bob", clients)  # in a quiet room with alice
    quiet = await alice.chats.create_room(pb.CreateRoomRequest(name="q"), metadata=alice.metadata)
    invite = await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=quiet.id, user_id=bob.user.id), metadata=alice.metadata
    )
    await bob.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
    )
    rooms: list[int] = []
    invites: list[int] = []
    for i, invitee in enumerate(invitees):
        room = await alice.chats.create_room(
            pb.CreateRoomRequest(name=f"r{i}"), metadata=alice.metadata
        )
        sent = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=invitee.user.id),
            metadata=alice.metadata,
        )
        rooms.append(room.id)
        invites.append(sent.id)

    async with contextlib.AsyncExitStack() as streams:
        on_b = [await reopen(c, streams) for c in [*invitees, carol]]
        b_live = await reopen(bob, streams)
        a_live = await reopen(alice, streams)
        await a_live.send(quiet.id, "before")
        assert (await b_live.wait_for(lambda f: f.message is not None)).message.id == 1

        replica_link.cut()  # B alone loses RabbitMQ; A and the worker keep it
        b.wait_for_line("lost the connection to RabbitMQ", timeout=30)
        # Meanwhile, through A: the invitees accept, carol signs out, and
        # alice writes into the quiet room (no later message reveals it).
        for invitee, invite_id in zip(invitees, invites, strict=True):
            elsewhere = CrabClient("127.0.0.1", a.port)
            clients.append(elsewhere)
            elsewhere.tokens = invitee.tokens
            await elsewhere.invites.answer_invite(
                pb.AnswerInviteRequest(invite_id=invite_id, accept=True),
                metadata=elsewhere.metadata,
            )
        carol_on_a = CrabClient("127.0.0.1", a.port)
        clients.append(carol_on_a)
        carol_on_a.tokens = carol.tokens
        await carol_on_a.accounts.sign_out(pb.SignOutRequest(), metadata=carol_on_a.metadata)
        cid = await a_live.send(quiet.id, "while B was away")
        ack = await a_live.wait_for(lambda f: f.ack is not None and f.ack.client_message_id == cid)
        assert ack.ack.message.id == 2
        replica_link.restore()

        # B is back with an empty queue: it ends every stream it holds.
        for old in [*on_b, b_live]:
            await ended_with(old, Status.UNAVAILABLE)
        # Carol's session is over: her client cannot resume.
        with pytest.raises(GRPCError) as refused:
            await reopen(carol, streams)
        assert refused.value.status == Status.UNAUTHENTICATED
        # Bob resumes from what he saw and gets the message he missed.
        b_live = await reopen(bob, streams, {quiet.id: 1})
        assert [(f.message.id, f.message.text) for f in b_live.backlog if f.message] == [
            (2, "while B was away")
        ]
        # Every invitee has its room, live on the resumed stream.
        for invitee, room_id in zip(invitees, rooms, strict=True):
            live = await reopen(invitee, streams)
            mine = await invitee.chats.my_chats(pb.Empty(), metadata=invitee.metadata)
            assert room_id in [summary.chat.id for summary in mine.chats]
            await a_live.send(room_id, f"welcome {room_id}")
            got = await live.wait_for(lambda f: f.message is not None, 30)
            assert (got.message.chat_id, got.message.text) == (room_id, f"welcome {room_id}")
