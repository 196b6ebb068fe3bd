"""The broker contract suite runs once per adapter: `broker_kind` is
"memory" or "amqp" (a real RabbitMQ, started for the session); `amqp` alone
is for the guarantees only a real broker keeps. The storage suites run once
per database: `database` is a migrated SQLite or a real PostgreSQL."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crab.core.broker.base import Broker
from crab.core.broker.memory import MemoryBroker
from crab.core.storage.database import Database
from tests.helpers.services import rabbitmq_url

_prefixes = itertools.count(1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'crab.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    made = Database(database_url)
    await made.migrate()
    yield made
    await made.close()


class Brokers:
    """Broker instances of one deployment: with AMQP each is a separate
    connection, as separate processes would have, sharing one command queue
    and one event exchange; the memory broker lives in one process, so
    every "instance" is the same one."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.prefix = f"test{os.getpid()}-{next(_prefixes)}"
        self._opened: list[Broker] = []

    async def new(self, url: str | None = None) -> Broker:
        if self.kind == "memory":
            if not self._opened:
                self._opened.append(MemoryBroker())
                await self._opened[0].start()
            return self._opened[0]
        from crab.core.broker.amqp import AmqpBroker

        broker = AmqpBroker(url or self.url, prefix=self.prefix)
        self._opened.append(broker)
        await broker.start()
        return broker

    async def close(self) -> None:
        for broker in reversed(self._opened):
            await broker.close()


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.slow)])
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def brokers(request: pytest.FixtureRequest, broker_kind: str) -> AsyncIterator[Brokers]:
    url = request.getfixturevalue("rabbitmq_url") if broker_kind == "amqp" else "memory://"
    made = Brokers(broker_kind, url)
    yield made
    await made.close()


@pytest.fixture
async def broker(brokers: Brokers) -> Broker:
    return await brokers.new()


@pytest.fixture
async def amqp(rabbitmq_url: str) -> AsyncIterator[Brokers]:
    """For what only a real broker can promise."""
    made = Brokers("amqp", rabbitmq_url)
    yield made
    await made.close()


__all__ = ["Brokers", "rabbitmq_url"]
