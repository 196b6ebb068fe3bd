"""The admin commands on the scaled shape (RabbitMQ, PostgreSQL, two API
replicas and two workers, as processes), given the servers' broker
(`--broker`, as CRAB_BROKER is everywhere in deploy/k8s): the replicas'
open streams hear at once. Their periodic check is off here
(CRAB_SESSION_CHECK_INTERVAL=0), so only the broker can have told them."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from tests.helpers.chats import join_room
from tests.helpers.cluster import Cluster
from tests.helpers.process import LIFTED_LIMITS, run_crab
from tests.helpers.server import PASSWORD
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HEARD_WITHIN = 10.0  # seconds; a publish and its delivery take milliseconds


@pytest.fixture
def unchecked(rabbitmq_url: str, pg_database_url: str, tmp_path: Path) -> Iterator[Cluster]:  # noqa: F811
    env = {
        "CRAB_JWT_SECRET": secrets.token_urlsafe(32),
        "CRAB_SESSION_CHECK_INTERVAL": "0",
        **LIFTED_LIMITS,
    }
    with Cluster.running(rabbitmq_url, pg_database_url, tmp_path, env) as cluster:
        yield cluster


async def admin(cluster: Cluster, *args: str) -> str:
    """`crab ARGS` on the cluster's database and broker; its stdout (it must succeed)."""
    done: subprocess.CompletedProcess[str] = await asyncio.to_thread(
        run_crab,
        *args,
        "--database",
        cluster.database,
        "--data-dir",
        str(cluster.data / "admin"),
        "--broker",
        cluster.broker,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


async def test_streams_on_every_replica_hear_the_admin_at_once(unchecked: Cluster) -> None:
    a, b = unchecked.apis
    alice = CrabClient("127.0.0.1", a.port)
    bob = CrabClient("127.0.0.1", b.port)
    carol = CrabClient("127.0.0.1", b.port)
    try:
        await alice.sign_up("alice", PASSWORD)
        await bob.sign_up("bob", PASSWORD)
        await carol.sign_up("carol", PASSWORD)
        ops = await join_room(alice, bob, "ops")
        team = await join_room(alice, bob, "team")
        await join_room(alice, carol, "all")
        async with alice.session() as alices, bob.session() as bobs, carol.session() as carols:
            # A room deleted: its members, on both replicas, see it go.
            assert "deleted room" in await admin(unchecked, "room", "delete", "ops", "--yes")
            for live in (alices, bobs):
                left = await live.wait_for(lambda f: f.chat_left is not None, HEARD_WITHIN)
                assert left.chat_left is not None and left.chat_left.chat_id == ops

            # An account disabled: its stream, on the other replica, ends.
            assert "is disabled" in await admin(unchecked, "user", "disable", "carol")
            with pytest.raises(GRPCError) as ended:
                async with asyncio.timeout(HEARD_WITHIN):
                    while await carols.recv() is not None:
                        pass
            assert ended.value.status is Status.UNAUTHENTICATED

            # An account deleted: its stream ends, the others in its chats see it leave.
            assert "deleted bob" in await admin(unchecked, "user", "delete", "bob", "--yes")
            gone = await alices.wait_for(lambda f: f.member_left is not None, HEARD_WITHIN)
            assert gone.member_left is not None and gone.member_left.chat_id == team
            with pytest.raises(GRPCError) as bob_ended:
                async with asyncio.timeout(HEARD_WITHIN):
                    while await bobs.recv() is not None:
                        pass
            assert bob_ended.value.status is Status.UNAUTHENTICATED
    finally:
        for client in (alice, bob, carol):
            client.close()


def test_an_unreachable_broker_changes_nothing(unchecked: Cluster, tmp_path: Path) -> None:
    database = ["--database", unchecked.database, "--data-dir", str(tmp_path / "admin")]
    added = run_crab("user", "add", "dave", "--password-stdin", *database, input=PASSWORD)
    assert added.returncode == 0, added.stderr
    nowhere = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens on port 1
    done = run_crab("user", "disable", "dave", *database, "--broker", nowhere)
    assert done.returncode == 1
    assert "the broker is not reachable" in done.stderr and "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    listed = run_crab("user", "list", *database)
    assert "dave\tdave\tactive" in listed.stdout  # still active

    wrong = run_crab("user", "disable", "dave", *database, "--broker", "redis://x")
    assert wrong.returncode == 2 and "is not an amqp:// URL" in wrong.stderr
