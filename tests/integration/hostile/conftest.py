"""The hostile-client suite: a real `crab serve` process, an attacker that
speaks plain gRPC or raw HTTP/2 to it, and a bystander (two users in a
room, one of them on a live session stream) who must keep working while
the attack runs.

    async def test_x(hostile_server, bystander):
        ... attack hostile_server.port ...
        await bystander.check()      # a call answered, a message delivered live
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers.chats import Bystander, bystander_on
from tests.helpers.process import CrabProcess


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[CrabProcess]:
    """`crab serve` with its default limits (what a team would run)."""
    server = CrabProcess.start(tmp_path / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bystander(hostile_server: CrabProcess) -> AsyncIterator[Bystander]:
    async with bystander_on(hostile_server) as found:
        yield found
