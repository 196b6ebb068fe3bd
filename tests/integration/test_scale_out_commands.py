"""Commands stay idempotent on the scaled shape (RabbitMQ, PostgreSQL, two
API replicas, workers as processes): workers are killed with kill -9 while
rooms are created, invites sent and answered. A killed worker's commands
are delivered again to another, which finds their first results; a client
that hears UNAVAILABLE retries with the same request id. Then there are
exactly as many rooms as calls that succeeded, and no answer that took
effect is reported NOT_FOUND."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, new_request_id
from crab.proto.crab import v1 as pb
from tests.helpers.cluster import Cluster, join
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

T = TypeVar("T")
ROUNDS = 100  # each: create a room, invite Bob, Bob accepts
CALLERS = 6  # rounds going on at once
KILL_AT = (8, 30, 55)  # rounds done when a worker is killed
# Rounds this far past a kill's mark wait for that kill, so all of them land
# mid-traffic even when a restarted worker is slow to come up.
KILL_LEAD = 2 * CALLERS


async def with_retries(call: Callable[[], Awaitable[T]], tally: dict[str, int]) -> T:
    """A user action: sent again, unchanged (same request id), after UNAVAILABLE."""
    for _ in range(30):
        try:
            return await call()
        except GRPCError as error:
            if error.status is not Status.UNAVAILABLE:
                raise
            tally["unavailable"] += 1
            await asyncio.sleep(0.5)  # a client's back-off
    raise AssertionError("never answered")


async def test_worker_kills_make_no_extra_room_and_no_false_not_found(
    cluster: Cluster,
    clients: list[CrabClient],
) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    tally = {"unavailable": 0}
    rooms: list[int] = []
    answered: list[int] = []
    done = asyncio.Event()
    progress = asyncio.Condition()
    killed = [asyncio.Event() for _ in KILL_AT]

    async def one_round(i: int) -> None:
        for mark, kill in zip(KILL_AT, killed, strict=True):
            if i >= mark + KILL_LEAD:
                await kill.wait()
        create = pb.CreateRoomRequest(name=f"room {i}", request_id=new_request_id())
        room = await with_retries(
            lambda: alice.chats.create_room(create, metadata=alice.metadata), tally
        )
        invite = pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id)
        invite.request_id = new_request_id()
        sent = await with_retries(
            lambda: alice.invites.invite_to_room(invite, metadata=alice.metadata), tally
        )
        accept = pb.AnswerInviteRequest(invite_id=sent.id, accept=True)
        accept.request_id = new_request_id()
        answer = await with_retries(
            lambda: bob.invites.answer_invite(accept, metadata=bob.metadata), tally
        )
        assert answer.chat is not None and answer.chat.id == room.id
        async with progress:
            rooms.append(room.id)
            answered.append(sent.id)
            progress.notify_all()

    async def caller(numbers: range) -> None:
        for i in numbers:
            await one_round(i)

    async def killer() -> None:
        for mark, kill in zip(KILL_AT, killed, strict=True):

            def reached(mark: int = mark) -> bool:
                return len(rooms) >= mark or done.is_set()

            async with progress:
                await progress.wait_for(reached)
            if done.is_set():
                return
            victim = next(w for w in cluster.workers if w.proc.poll() is None)
            victim.kill()  # mid-traffic: commands in its hands come back
            kill.set()
            await asyncio.to_thread(cluster.start_worker)

    killing = asyncio.create_task(killer())
    try:
        await asyncio.gather(*(caller(range(c, ROUNDS, CALLERS)) for c in range(CALLERS)))
    finally:
        done.set()
        async with progress:
            progress.notify_all()
        await killing

    print(f"\n{ROUNDS} rounds, {len(KILL_AT)} worker kills, {tally['unavailable']} retries")
    assert len(set(rooms)) == ROUNDS
    mine = await alice.chats.my_chats(pb.Empty(), metadata=alice.metadata)
    assert sorted(s.chat.id for s in mine.chats) == sorted(rooms)  # not one more
    theirs = await bob.chats.my_chats(pb.Empty(), metadata=bob.metadata)
    assert sorted(s.chat.id for s in theirs.chats) == sorted(rooms)
    pending = await bob.invites.my_invites(pb.Empty(), metadata=bob.metadata)
    assert list(pending.received) == []
    assert sum(1 for w in cluster.workers if w.proc.poll() is not None) == len(KILL_AT)
