"""A session stream's handler cancelled while it disconnects (a client's
reset arrives then) still leaves the Hub: no binding, no session kept."""

from __future__ import annotations

import asyncio

from crab.core.app import Crab
from crab.core.domain.models import Caller
from crab.proto.crab import v1 as pb
from tests.helpers.server import ClientFactory


async def test_a_disconnect_cancelled_half_way_still_unbinds_the_session(
    crab: Crab, connect: ClientFactory
) -> None:
    alice = await connect("alice")
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    session = await crab.hub.connect(Caller(alice.user.id, 0), [])
    assert crab.hub.sessions() == {session} and session.chats == {room.id}

    leaving = asyncio.ensure_future(crab.hub.disconnect(session))
    await asyncio.sleep(0)  # inside disconnect, at its first await
    leaving.cancel()
    await asyncio.wait({leaving})
    assert leaving.cancelled()
    # What was started finishes: the session leaves every topic it held.
    finishing = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Hub._disconnect"]
    if finishing:
        await asyncio.wait_for(asyncio.gather(*finishing), 10)
    assert not session.chats and crab.hub.sessions() == set()
