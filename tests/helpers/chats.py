"""Short ways through a real client to what a test starts from: a room, a
member who joined it, a new user, a bystander who must keep working while
an attack runs, and the whole of a chat's history."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.process import CrabProcess
from tests.helpers.server import PASSWORD


async def create_room(client: CrabClient, name: str) -> pb.Chat:
    return await client.chats.create_room(pb.CreateRoomRequest(name=name), metadata=client.metadata)


async def join(inviter: CrabClient, invitee: CrabClient, room: pb.Chat) -> None:
    invite = await inviter.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=room.id, user_id=invitee.user.id), metadata=inviter.metadata
    )
    await invitee.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=invitee.metadata
    )


def is_message(frame: pb.ServerFrame) -> bool:
    return frame.message is not None


async def all_messages(client: CrabClient, chat_id: int) -> list[pb.Message]:
    """The whole chat via GetMessages, paged from the newest; oldest first."""
    found: list[pb.Message] = []
    before = 0
    while True:
        page = await client.chats.get_messages(
            pb.GetMessagesRequest(chat_id=chat_id, before_id=before, limit=200),
            metadata=client.metadata,
        )
        found.extend(page.messages)
        if not page.has_more:
            return found[::-1]
        before = page.messages[-1].id


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
