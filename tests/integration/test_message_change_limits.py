"""Edits, deletes and reactions share one rate limit per user: beyond it,
RESOURCE_EXHAUSTED and nothing changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.config import Rate, Settings
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages, join_room
from tests.helpers.server import ClientFactory, make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Overrides conftest's: three changes an hour per user."""
    base = make_settings(tmp_path)
    return dataclasses.replace(
        base, limits=dataclasses.replace(base.limits, changes_per_user=Rate(3, 3600))
    )


async def test_changes_beyond_the_rate_are_refused_and_change_nothing(
    connect: ClientFactory,
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await join_room(alice, bob)
    async with alice.session() as live:
        await live.send(room, "hello")
        frame = await live.wait_for(lambda f: f.ack is not None)
    assert frame.ack is not None and frame.ack.message is not None
    message_id = frame.ack.message.id
    await alice.edit_message(room, message_id, "one")
    await alice.react(room, message_id, "👍")
    await alice.react(room, message_id, "👍")
    before = await all_messages(alice, room)
    for call in (
        alice.edit_message(room, message_id, "four"),
        alice.react(room, message_id, "🦀"),
        alice.delete_message(room, message_id),
    ):
        with pytest.raises(GRPCError) as refused:
            await call
        assert refused.value.status == Status.RESOURCE_EXHAUSTED
    assert await all_messages(alice, room) == before
    # Bob has his own budget.
    reacted = await bob.react(room, message_id, "🦀")
    assert [r.emoji for r in reacted.reactions] == ["🦀"]
    assert isinstance(reacted, pb.Message)
