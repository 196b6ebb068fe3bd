"""The hostile-client suite: a real `crab serve` process, an attacker that
speaks plain gRPC or raw HTTP/2 to it, and a bystander (two users in a
room, one of them on a live session stream) who must keep working while
the attack runs.

    async def test_x(hostile_server, bystander):
        ... attack hostile_server.port ...
        await bystander.check()      # a call answered, a message delivered live
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.serve_process import CrabProcess

PASSWORD = "correct horse battery"


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[CrabProcess]:
    """`crab serve` with its default limits (what a team would run)."""
    server = CrabProcess.start(tmp_path / "data")
    try:
        yield server
    finally:
        server.stop()


class Bystander:
    """Alice and Bob in a room; Bob listens on his session stream."""

    def __init__(self, alice: CrabClient, bob: CrabClient, room: int, live: SessionStream):
        self.alice = alice
        self.bob = bob
        self.room = room
        self.live = live

    async def check(self, timeout: float = 30.0) -> None:
        """Alice's call is answered and her message reaches Bob live."""
        async with asyncio.timeout(timeout):
            await self.alice.chats.my_chats(pb.Empty(), metadata=self.alice.metadata)
            text = f"still here {uuid.uuid4().hex[:8]}"
            async with self.alice.session() as mine:
                await mine.send(self.room, text)
                await mine.wait_for(lambda f: f.ack is not None)
            await self.live.wait_for(lambda f: f.message is not None and f.message.text == text)


async def new_user(server: CrabProcess, name: str | None = None) -> CrabClient:
    client = CrabClient("127.0.0.1", server.port)
    await client.sign_up(name or f"u{uuid.uuid4().hex[:10]}", PASSWORD)
    return client


async def join_room(alice: CrabClient, bob: CrabClient, name: str = "ops") -> int:
    """A room of alice's that bob was invited to and joined; its id."""
    room = await alice.chats.create_room(pb.CreateRoomRequest(name=name), metadata=alice.metadata)
    invite = await alice.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
    )
    await bob.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
    )
    return room.id


@contextlib.asynccontextmanager
async def bystander_on(server: CrabProcess) -> AsyncIterator[Bystander]:
    """A bystander on any server (the fixture's is on `hostile_server`)."""
    alice = await new_user(server)
    bob = await new_user(server)
    room = await join_room(alice, bob)
    try:
        async with bob.session() as live:  # entered once Ready arrived
            yield Bystander(alice, bob, room, live)
    finally:
        alice.close()
        bob.close()


@pytest.fixture
async def bystander(hostile_server: CrabProcess) -> AsyncIterator[Bystander]:
    async with bystander_on(hostile_server) as found:
        yield found
