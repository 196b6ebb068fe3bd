"""How an admin's act reaches open live streams, on an in-process server:
through the broker when the admin's process shares it, and otherwise
through the server's own check of its streams (stream_check.py, via
live.Hub.check_streams, called here directly instead of waiting for its
interval)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import SessionStream
from crab.core.app import Crab
from crab.core.clock import now
from crab.core.storage import rooms, sessions
from crab.tui.saved import SessionFile
from crab.tui.state import Screen
from tests.helpers.chats import join_room
from tests.helpers.server import PASSWORD, ClientFactory
from tests.integration.test_app_headless import person


async def ended_with(live: SessionStream) -> Status:
    with pytest.raises(GRPCError) as ended:
        async with asyncio.timeout(10):
            while await live.recv() is not None:
                pass
    return ended.value.status


async def test_a_session_revoked_behind_the_servers_back_ends_at_its_next_check(
    crab: Crab, connect: ClientFactory
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    async with alice.session() as gone, bob.session() as stays:
        # What `crab user ...` does from its own process: no event here.
        await crab.database.write(sessions.revoke_all, alice.user.id, now())
        await crab.hub.check_streams()
        assert await ended_with(gone) is Status.UNAUTHENTICATED
        assert (await bob.who_am_i()).id == bob.user.id
        await bob.create_room("still live")  # bob's stream goes on
        await stays.wait_for(lambda f: f.chat_joined is not None)


async def test_a_room_deleted_behind_the_servers_back_leaves_its_streams(
    crab: Crab, connect: ClientFactory
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    room = await join_room(alice, bob, "doomed")
    kept = await join_room(alice, bob, "kept")
    async with bob.session() as live:
        await crab.database.write(rooms.delete, room)
        await crab.hub.check_streams()
        left = await live.wait_for(lambda f: f.chat_left is not None)
        assert left.chat_left is not None and left.chat_left.chat_id == room
        await crab.hub.check_streams()  # told once: the stream no longer follows it
        async with alice.session() as mine:
            await mine.send(kept, "after")
        frame = await live.wait_for(lambda f: f.chat_left is not None or f.message is not None)
        assert frame.message is not None and frame.message.text == "after"


async def test_an_admin_sharing_the_broker_ends_streams_at_once(
    crab: Crab, connect: ClientFactory
) -> None:
    alice = await connect("alice")
    async with alice.session() as live:
        await crab.admin.disable(alice.user.username)
        assert await ended_with(live) is Status.UNAUTHENTICATED
    with pytest.raises(GRPCError) as refused:
        await alice.refresh()
    assert refused.value.status is Status.PERMISSION_DENIED
    await crab.admin.enable(alice.user.username)
    await alice.sign_in(alice.user.username, PASSWORD)
    assert (await alice.who_am_i()).username == alice.user.username


@pytest.mark.timeout(60)
async def test_crab_chat_of_a_disabled_account_returns_to_sign_in_saying_why(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "carol") as carol:
        await carol.sign_up("carol")
        await crab.admin.disable("carol")
        state = await carol.until(lambda s: s.screen is Screen.SIGN_IN)
        assert state.sign_in.error == "signed out: account disabled by an admin"
    assert SessionFile(tmp_path / "carol").load(f"127.0.0.1:{crab.port}") is None
