"""Edits, reactions, deletes and replies on the scaled shape (RabbitMQ,
PostgreSQL, two API replicas, workers as processes): made through one
replica, seen live through the other, and caught up on resume there."""

from __future__ import annotations

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages, join_room
from tests.helpers.cluster import Cluster, join
from tests.helpers.services import pg_database_url, rabbitmq_url  # noqa: F401  (fixtures)
from tests.helpers.views import View

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def sent(live: SessionStream, chat_id: int, text: str, reply_to_id: int = 0) -> pb.Message:
    cid = await live.send(chat_id, text, reply_to_id=reply_to_id)
    frame = await live.wait_for(lambda f: f.ack is not None and f.ack.client_message_id == cid)
    assert frame.ack is not None and frame.ack.message is not None
    return frame.ack.message


async def change_seen(live: SessionStream, message_id: int, change_seq: int) -> pb.Message:
    frame = await live.wait_for(
        lambda f: (
            f.message_changed is not None
            and (f.message_changed.id, f.message_changed.change_seq) == (message_id, change_seq)
        ),
        timeout=30,
    )
    assert frame.message_changed is not None
    return frame.message_changed


async def test_changes_on_one_replica_are_seen_on_the_other(
    cluster: Cluster, clients: list[CrabClient]
) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    bob = await join(b, "bob", clients)
    room = await join_room(alice, bob)
    view = View()
    async with alice.session() as mine, bob.session() as theirs:
        first = await sent(mine, room, "first")
        second = await sent(mine, room, "second")
        third = await sent(mine, room, "third")
        view.apply(await theirs.collect(lambda f: f.message is not None, 3, timeout=30))

        await alice.edit_message(room, first.id, "first, edited")
        view.apply([pb.ServerFrame(message_changed=await change_seen(theirs, first.id, 1))])
        await alice.react(room, second.id, "🦀")
        seen = await change_seen(theirs, second.id, 2)
        assert [(r.emoji, list(r.user_ids)) for r in seen.reactions] == [("🦀", [alice.user.id])]
        view.apply([pb.ServerFrame(message_changed=seen)])
        await bob.react(room, second.id, "🦀")  # through the other replica
        both = await change_seen(mine, second.id, 3)
        assert list(both.reactions[0].user_ids) == [alice.user.id, bob.user.id]
        view.apply([pb.ServerFrame(message_changed=await change_seen(theirs, second.id, 3))])
        await alice.delete_message(room, third.id)
        gone = await change_seen(theirs, third.id, 4)
        assert gone.deleted and gone.text == ""
        view.apply([pb.ServerFrame(message_changed=gone)])

        reply = await sent(theirs, room, "re", reply_to_id=first.id)
        assert reply.reply_to is not None and reply.reply_to.text_start == "first, edited"
        view.apply([await mine.wait_for(lambda f: f.message is not None and f.message.id == 4)])
        view.apply([pb.ServerFrame(message=reply)])  # bob's own, from his ack

    # Bob away; alice changes things through replica a; bob back through a.
    async with alice.session() as mine:
        await alice.edit_message(room, first.id, "edited again")
        await alice.react(room, second.id, "🦀")  # off
        await sent(mine, room, "while you were away")
    back = CrabClient("127.0.0.1", a.port)
    clients.append(back)
    back.tokens = bob.tokens
    async with back.session(view.cursors(), view.changes()) as again:
        view.apply(again.backlog)
    assert view.chat(room) == await all_messages(bob, room)
