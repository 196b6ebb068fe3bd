"""Fixtures: a real crab server on a loopback port, and real clients."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from crab.config import Limits, Rate, Settings
from crab.core.app import Crab
from tests.services import pg_crab_database_url, pg_database_url, pg_databases, postgres_url

PASSWORD = "correct horse battery"
_names = itertools.count(1)


# Every client of the in-process server comes from 127.0.0.1: one address.
LIFTED: dict[str, object] = {
    "signup_per_address": Rate(100_000, 1),
    "rooms_per_user": Rate(100_000, 1),
    "rooms_per_address": Rate(100_000, 1),
    "invites_per_user": Rate(100_000, 1),
    "invites_per_address": Rate(100_000, 1),
    "hash_queue": 1_000,
    "hash_queue_per_address": 1_000,
}


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Test settings: cheap hashing, a free port, and rate limits high enough
    that only the tests about limits meet them (those run `crab serve` with
    its defaults: tests/hostile)."""
    base = Settings(
        data_dir=tmp_path / "data",
        port=0,
        password_hashing="cheap",
        limits=Limits(send_rate=10_000, send_burst=10_000, **LIFTED),
    )
    return dataclasses.replace(base, **overrides)


# The database the API-level tests run on: "sqlite" (a file in each test's
# data dir) or "postgresql" (a fresh database per crab, on a PostgreSQL server
# started for the session: see tests/services.py). `make test-postgres`.
TEST_DATABASE = os.environ.get("CRAB_TEST_DATABASE", "sqlite")
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise ValueError(f"CRAB_TEST_DATABASE must be sqlite or postgresql, not {TEST_DATABASE!r}")

NewDatabase = Callable[[], Awaitable[str | None]]


@pytest.fixture
def new_database(request: pytest.FixtureRequest) -> NewDatabase:
    """new() -> Settings.database_url for another crab in this test: None
    (SQLite in its data dir), or the URL of a fresh PostgreSQL database."""
    if TEST_DATABASE == "postgresql":
        made = request.getfixturevalue("pg_databases")

        async def postgresql() -> str:
            url: str = await made(migrated=True)
            return url

        return postgresql

    async def sqlite() -> None:
        return None

    return sqlite


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    postgresql = TEST_DATABASE == "postgresql"
    url = request.getfixturevalue("pg_crab_database_url") if postgresql else None
    return make_settings(tmp_path, database_url=url)


@pytest.fixture
async def crab(settings: Settings) -> AsyncIterator[Crab]:
    app = await Crab.open(settings)
    await app.start_worker()
    await app.start_server()
    yield app
    await app.close()


ClientFactory = Callable[..., Awaitable[CrabClient]]


@pytest.fixture
async def connect(crab: Crab) -> AsyncIterator[ClientFactory]:
    """connect("alice") -> a client signed up as a fresh user named alice<N>."""
    clients: list[CrabClient] = []

    async def make(name: str | None = None, sign_up: bool = True) -> CrabClient:
        client = CrabClient("127.0.0.1", crab.port)
        clients.append(client)
        if sign_up:
            await client.sign_up(f"{name or 'user'}{next(_names)}", PASSWORD)
        return client

    yield make
    for client in clients:
        client.close()


__all__ = [
    "PASSWORD",
    "ClientFactory",
    "Limits",
    "NewDatabase",
    "make_settings",
    "pg_crab_database_url",
    "pg_database_url",
    "pg_databases",
    "postgres_url",
]
