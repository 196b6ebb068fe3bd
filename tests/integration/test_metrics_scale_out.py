"""`crab worker --metrics` on the scaled shape (RabbitMQ, PostgreSQL, an API
replica, two workers, as processes): the workers count what they store,
the replica what it acknowledges, each over its own HTTP listener."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from tests.helpers.chats import is_message, join
from tests.helpers.cluster import Cluster
from tests.helpers.metrics import Samples, delta, metrics_url, scrape, value
from tests.helpers.process import LIFTED_LIMITS
from tests.helpers.server import PASSWORD
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SENT = 20


@pytest.fixture
def metered(rabbitmq_url: str, pg_database_url: str, tmp_path: Path) -> Iterator[Cluster]:  # noqa: F811
    """One API replica and two workers, each with --metrics (CRAB_METRICS) on a free port."""
    env = {
        "CRAB_JWT_SECRET": secrets.token_urlsafe(32),
        "CRAB_METRICS": "127.0.0.1:0",
        **LIFTED_LIMITS,
    }
    cluster = Cluster(rabbitmq_url, pg_database_url, tmp_path, env)
    try:
        cluster.start_api()
        cluster.start_worker()
        cluster.start_worker()
        yield cluster
    finally:
        cluster.stop()


def total(samples: list[Samples], name: str, **labels: str) -> float:
    return sum(value(s, name, **labels) for s in samples)


async def test_workers_count_what_they_store_and_the_replica_what_it_acknowledges(
    metered: Cluster,
) -> None:
    (api,) = metered.apis
    api_url = metrics_url(api)
    worker_urls = [metrics_url(w) for w in metered.workers]
    alice = CrabClient("127.0.0.1", api.port)
    bob = CrabClient("127.0.0.1", api.port)
    try:
        await alice.sign_up("alice", PASSWORD)
        await bob.sign_up("bob", PASSWORD)
        room = await alice.create_room("scaled")
        await join(alice, bob, room)
        api_before = await scrape(api_url)
        workers_before = [await scrape(u) for u in worker_urls]
        async with alice.session() as a, bob.session() as b:
            for i in range(SENT):
                await a.send(room.id, f"message {i}")
            await a.collect(lambda f: f.ack is not None, SENT, timeout=30)
            await b.collect(is_message, SENT, timeout=30)
            api_after = await scrape(api_url)
            workers_after = [await scrape(u) for u in worker_urls]
    finally:
        alice.close()
        bob.close()

    stored = total(workers_after, "crab_messages_stored_total") - total(
        workers_before, "crab_messages_stored_total"
    )
    assert stored == SENT
    sends = "crab_commands_total"
    handled = total(workers_after, sends, command="SendMessage", status="OK") - total(
        workers_before, sends, command="SendMessage", status="OK"
    )
    assert handled == SENT
    # The workers wrote to PostgreSQL and published each message's event.
    writes = "crab_database_seconds_count"
    assert total(workers_after, writes, operation="write") > total(
        workers_before, writes, operation="write"
    )
    published = "crab_broker_seconds_count"
    assert (
        total(workers_after, published, operation="publish")
        - total(workers_before, published, operation="publish")
        >= SENT
    )
    # A worker serves no session streams: none of their gauges.
    assert all(("crab_sessions_connected", ()) not in w for w in workers_after)

    # The replica stores nothing itself: it asks, over RabbitMQ, and acknowledges.
    assert delta(api_after, api_before, "crab_messages_stored_total") == 0
    assert delta(api_after, api_before, "crab_sends_total", status="OK") == SENT
    assert delta(api_after, api_before, "crab_ack_latency_seconds_count") == SENT
    assert delta(api_after, api_before, "crab_broker_seconds_count", operation="request") == SENT
    assert value(api_after, "crab_sessions_connected") == 2
    assert (
        value(api_after, "crab_broker_errors_total", operation="request", status="UNAVAILABLE") == 0
    )
