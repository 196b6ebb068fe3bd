"""Room admin on the scaled shape (RabbitMQ, PostgreSQL, two API replicas,
workers as processes): the owner on one replica removes a member whose
stream and calls are on the other; the member's access ends there at once,
and the others there see who was removed. A rename and a new display name
cross the replicas too."""

from __future__ import annotations

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from tests.helpers.chats import create_room, join
from tests.helpers.cluster import Cluster
from tests.helpers.cluster import join as sign_up_on
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_a_kick_on_one_replica_ends_access_on_the_other(
    cluster: Cluster, clients: list[CrabClient]
) -> None:
    a, b = cluster.apis
    alice = await sign_up_on(a, "alice", clients)
    bob = await sign_up_on(b, "bob", clients)
    carol = await sign_up_on(b, "carol", clients)
    room = await create_room(alice, "ops")
    await join(alice, bob, room)
    await join(alice, carol, room)
    async with bob.session() as bobs, carol.session() as carols:
        renamed = await alice.rename_room(room.id, "operations")
        for live in (bobs, carols):
            frame = await live.wait_for(lambda f: f.chat_updated is not None, timeout=30)
            assert frame.chat_updated == renamed

        await alice.set_display_name("Alice A.")
        frame = await bobs.wait_for(lambda f: f.user_updated is not None, timeout=30)
        assert frame.user_updated.display_name == "Alice A."

        await alice.remove_member(room.id, bob.user.id)
        left = await bobs.wait_for(lambda f: f.chat_left is not None, timeout=30)
        assert left.chat_left.chat_id == room.id
        frame = await carols.wait_for(lambda f: f.member_removed is not None, timeout=30)
        assert frame.member_removed.user.id == bob.user.id
        assert frame.member_removed.by.id == alice.user.id
        for call in (bob.chat(room.id), bob.history(room.id)):
            with pytest.raises(GRPCError) as err:
                await call
            assert err.value.status is Status.NOT_FOUND
        await bobs.send(room.id, "still in?")
        error = await bobs.wait_for(lambda f: f.send_error is not None, timeout=30)
        assert error.send_error.code == "NOT_FOUND"
        # The room goes on without him: carol's message reaches alice, not bob.
        await carols.send(room.id, "without bob")
        await carols.wait_for(lambda f: f.ack is not None, timeout=30)
    page = await alice.chats.get_messages(
        pb.GetMessagesRequest(chat_id=room.id), metadata=alice.metadata
    )
    assert [m.text for m in page.messages] == ["without bob"]
    assert {u.id for u in (await alice.chat(room.id)).members} == {alice.user.id, carol.user.id}
