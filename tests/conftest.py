"""Fixtures: a real crab server on a loopback port, and real clients."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from crab.config import Limits, Settings
from crab.core.app import Crab

PASSWORD = "correct horse battery"
_names = itertools.count(1)


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Test settings: cheap hashing, a free port, and a send rate limit high
    enough that only the rate-limit test meets it."""
    base = Settings(
        data_dir=tmp_path / "data",
        port=0,
        password_hashing="cheap",
        limits=Limits(send_rate=10_000, send_burst=10_000),
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


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


__all__ = ["PASSWORD", "ClientFactory", "Limits", "make_settings"]
