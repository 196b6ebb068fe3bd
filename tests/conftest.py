"""Fixtures: a real crab server on a loopback port, and real clients. What
the tests import lives in tests/helpers/."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from crab.client.connection import CrabClient
from crab.config import OidcSettings, Settings
from crab.core.app import Crab
from tests.helpers.oidc_provider import OidcProvider
from tests.helpers.server import (
    PASSWORD,
    SSO_REFETCH_GAP,
    ClientFactory,
    NewDatabase,
    SsoServer,
    make_settings,
)
from tests.helpers.services import pg_crab_database_url, pg_database_url, pg_databases, postgres_url

_names = itertools.count(1)


# Fixtures that start a real service (tests/helpers/services.py): a test that
# uses one, directly or through another fixture, is `slow` whoever wrote it,
# so `make test-fast` never needs RabbitMQ or PostgreSQL.
SERVICES = {"rabbitmq_url", "postgres_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# The database the API-level tests run on: "sqlite" (a file in each test's
# data dir) or "postgresql" (a fresh database per crab, on a PostgreSQL server
# started for the session: see tests/helpers/services.py). `make test-postgres`.
TEST_DATABASE = os.environ.get("CRAB_TEST_DATABASE", "sqlite")
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise ValueError(f"CRAB_TEST_DATABASE must be sqlite or postgresql, not {TEST_DATABASE!r}")


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


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    """A test OIDC provider on 127.0.0.1 (tests/helpers/oidc_provider.py)."""
    with OidcProvider() as running:
        yield running


@pytest.fixture
async def sso_server(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[SsoServer]:
    opened: list[Crab] = []

    async def start(oidc: dict[str, Any] | None = None, **overrides: Any) -> Crab:
        sso = OidcSettings(
            issuer=provider.issuer,
            client_id=provider.client_id,
            name="Test",
            keys_refetch_gap=SSO_REFETCH_GAP,
        )
        sso = dataclasses.replace(sso, **(oidc or {}))
        settings = make_settings(tmp_path / f"sso{len(opened)}", oidc=sso, **overrides)
        app = await Crab.open(settings)
        opened.append(app)
        await app.start_worker()
        await app.start_server()
        return app

    yield start
    for app in opened:
        await app.close()


# Fixtures defined in tests/helpers/services.py, registered for every test.
__all__ = ["pg_crab_database_url", "pg_database_url", "pg_databases", "postgres_url"]
