"""Typing and presence on the scaled shape (RabbitMQ, PostgreSQL, two API
replicas, a worker process): a notice made on one replica is seen on the
other, and a replica killed with -9 does not leave its users online."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from tests.helpers.chats import join_room
from tests.helpers.cluster import Cluster, join, via
from tests.helpers.process import LIFTED_LIMITS
from tests.helpers.proxy import TcpProxy
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HEARTBEAT, EXPIRY = 0.5, 3.0


@pytest.fixture
def quick_cluster(
    rabbitmq_url: str,  # noqa: F811
    amqp_link: TcpProxy,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """Two replicas whose presence beats are quick to come and to expire."""
    env = {
        "CRAB_JWT_SECRET": secrets.token_urlsafe(32),
        **LIFTED_LIMITS,
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


def presence_of(user_id: int, state: pb.PresenceState) -> Callable[[pb.ServerFrame], bool]:
    return lambda f: (
        f.presence is not None and f.presence.user_id == user_id and f.presence.state == state
    )


async def test_typing_and_presence_cross_replicas(
    quick_cluster: Cluster, clients: list[CrabClient]
) -> None:
    a, b = quick_cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    room = await join_room(alice, bob)
    async with alice.session() as mine:
        async with bob.session() as theirs:
            await mine.wait_for(presence_of(bob.user.id, pb.PresenceState.ONLINE), timeout=30)
            await theirs.typing(room)
            frame = await mine.wait_for(lambda f: f.typing is not None, timeout=30)
            assert frame.typing is not None and frame.typing.chat_id == room
            assert frame.typing.user is not None and frame.typing.user.id == bob.user.id
            await theirs.activity(away=True)
            await mine.wait_for(presence_of(bob.user.id, pb.PresenceState.AWAY), timeout=30)
            # Through replica a, bob's presence as replica b reports it.
            details = await alice.chat(room)
            states = {p.user_id: p.state for p in details.presence}
            assert states[bob.user.id] == pb.PresenceState.AWAY
        gone = await mine.wait_for(presence_of(bob.user.id, pb.PresenceState.OFFLINE), timeout=30)
        assert gone.presence is not None and gone.presence.last_seen_at is not None


async def test_a_replica_killed_does_not_leave_its_users_online(
    quick_cluster: Cluster, clients: list[CrabClient]
) -> None:
    a, b = quick_cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    room = await join_room(alice, bob)
    async with alice.session() as mine:
        theirs = bob.session()
        await theirs.__aenter__()
        await mine.wait_for(presence_of(bob.user.id, pb.PresenceState.ONLINE), timeout=30)
        b.kill()  # no goodbye: its beats just stop
        b.wait()
        frame = await mine.wait_for(
            presence_of(bob.user.id, pb.PresenceState.OFFLINE), timeout=EXPIRY + 30
        )
        assert frame.presence is not None and frame.presence.last_seen_at is not None
        details = await alice.chat(room)
        assert {p.user_id: p.state for p in details.presence}[bob.user.id] == (
            pb.PresenceState.OFFLINE
        )
