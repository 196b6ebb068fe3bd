"""MarkRead is a database write per call: beyond the per-user rate,
RESOURCE_EXHAUSTED and the read position stays where it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.config import Rate, Settings
from tests.helpers.chats import join_room
from tests.helpers.server import ClientFactory, make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Overrides conftest's: three read positions an hour per user."""
    base = make_settings(tmp_path)
    return dataclasses.replace(
        base, limits=dataclasses.replace(base.limits, mark_reads_per_user=Rate(3, 3600))
    )


async def test_read_positions_beyond_the_rate_are_refused_and_change_nothing(
    connect: ClientFactory,
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await join_room(alice, bob)
    async with alice.session() as live:
        for n in range(5):
            await live.send(room, f"message {n}")
            await live.wait_for(lambda f: f.ack is not None and f.ack.message is not None)
    for message_id in (1, 2, 3):
        await bob.mark_read(room, message_id)
    with pytest.raises(GRPCError) as refused:
        await bob.mark_read(room, 5)
    assert refused.value.status == Status.RESOURCE_EXHAUSTED
    detail = await alice.chat(room)
    read = {p.user_id: p.last_read_id for p in detail.read_positions}
    assert read[bob.user.id] == 3
    # Alice has her own budget.
    await alice.mark_read(room, 5)
