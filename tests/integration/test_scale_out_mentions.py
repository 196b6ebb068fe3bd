"""Mentions on the scaled shape (RabbitMQ, PostgreSQL, two API replicas,
workers as processes): made through one replica, seen live and counted
through the other, and an edit there takes them back."""

from __future__ import annotations

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import join_room
from tests.helpers.cluster import Cluster, join
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def sent(live: SessionStream, chat_id: int, text: str) -> pb.Message:
    cid = await live.send(chat_id, text)
    frame = await live.wait_for(lambda f: f.ack is not None and f.ack.client_message_id == cid)
    assert frame.ack is not None and frame.ack.message is not None
    return frame.ack.message


async def mention_count(client: CrabClient, chat_id: int) -> int:
    (summary,) = [s for s in await client.my_chats() if s.chat.id == chat_id]
    return summary.mention_count


async def test_a_mention_on_one_replica_is_seen_and_counted_on_the_other(
    cluster: Cluster, clients: list[CrabClient]
) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    room = await join_room(alice, bob)
    async with alice.session() as mine, bob.session() as theirs:
        hello = await sent(mine, room, f"@{bob.user.username} and @room: hello")
        assert (list(hello.mention_user_ids), hello.mentions_room) == ([bob.user.id], True)
        frame = await theirs.wait_for(
            lambda f: f.message is not None and f.message.id == hello.id, timeout=30
        )
        assert frame.message is not None
        assert (list(frame.message.mention_user_ids), frame.message.mentions_room) == (
            [bob.user.id],
            True,
        )
        assert await mention_count(bob, room) == 1

        edited = await alice.edit_message(room, hello.id, "hello")
        assert (list(edited.mention_user_ids), edited.mentions_room) == ([], False)
        seen = await theirs.wait_for(
            lambda f: f.message_changed is not None and f.message_changed.id == hello.id,
            timeout=30,
        )
        assert seen.message_changed is not None and not seen.message_changed.mention_user_ids
        assert await mention_count(bob, room) == 0
