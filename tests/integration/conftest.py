"""Fixtures of the scale-out tests (tests/helpers/cluster.py). They take
`rabbitmq_url` from the test module that uses them, which imports it from
tests/helpers/services.py (as before the move: one session node per module)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from tests.helpers.cluster import Cluster, via
from tests.helpers.process import Servers
from tests.helpers.proxy import TcpProxy


@pytest.fixture
def servers() -> Iterator[Servers]:
    """`await servers.start(data_dir, *options)`: real `crab serve` processes,
    every one stopped at the test's end."""
    started = Servers()
    yield started
    started.stop()


@pytest.fixture
def database_url(pg_database_url: str) -> str:
    # A fresh, empty PostgreSQL database: the replicas migrate it as they
    # start (one at a time, under PostgreSQL's advisory lock).
    return pg_database_url


@pytest.fixture
def amqp_link(rabbitmq_url: str) -> Iterator[TcpProxy]:
    """Every process reaches RabbitMQ through this proxy, so a test can cut
    them all off at once, as a broker restart does."""
    port = int(rabbitmq_url.rpartition("@")[2].partition("/")[0].rsplit(":", 1)[1])
    with TcpProxy(port) as proxy:
        yield proxy


@pytest.fixture
def cluster(
    rabbitmq_url: str,
    amqp_link: TcpProxy,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Cluster]:
    # Tests share the session's RabbitMQ node; its command queue is empty
    # between tests (every command is answered before a test ends).
    with Cluster.running(via(amqp_link.port, rabbitmq_url), database_url, tmp_path) as found:
        yield found


@pytest.fixture
async def clients() -> AsyncIterator[list[CrabClient]]:
    made: list[CrabClient] = []
    yield made
    for client in made:
        client.close()
