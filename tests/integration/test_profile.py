"""My profile through a real server and real clients: a new display name
seen live by the people I share a chat with, and a password change that
ends my other sessions while this one goes on."""

from __future__ import annotations

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.core.storage import users
from tests.helpers.chats import create_room, join
from tests.helpers.server import PASSWORD, ClientFactory

NEW_PASSWORD = "a brand new passphrase"


async def status_of(call: object) -> Status:
    with pytest.raises(GRPCError) as err:
        await call  # type: ignore[misc]
    return err.value.status


async def signed_in_as(connect: ClientFactory, who: CrabClient, password: str) -> CrabClient:
    other = await connect(sign_up=False)
    await other.sign_in(who.user.username, password)
    return other


async def test_a_new_display_name_is_seen_live_by_members(connect: ClientFactory) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    room = await create_room(alice, "ops")
    await join(alice, bob, room)
    second = await create_room(alice, "dev")
    await join(alice, bob, second)  # two shared chats: still one frame
    async with bob.session() as bobs, alice.session() as alices, carol.session() as carols:
        me = await alice.set_display_name("  Alice Liddell ")
        assert me.display_name == "Alice Liddell" and me.id == alice.user.id
        for live in (bobs, alices):
            frame = await live.wait_for(lambda f: f.user_updated is not None)
            assert (frame.user_updated.id, frame.user_updated.display_name) == (
                alice.user.id,
                "Alice Liddell",
            )
        # Carol shares no chat with alice: her next frame is her own news.
        await carol.set_display_name("Carol")
        frame = await carols.wait_for(lambda f: f.user_updated is not None)
        assert frame.user_updated.id == carol.user.id
        await alice.set_display_name("Alice again")
        frame = await bobs.wait_for(lambda f: f.user_updated is not None)
        assert frame.user_updated.display_name == "Alice again"  # not a duplicate of the first
    assert (await alice.who_am_i()).display_name == "Alice again"
    members = {u.id: u.display_name for u in (await bob.chat(room.id)).members}
    assert members[alice.user.id] == "Alice again"


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "esc\x1b[31m", "two\nlines", "a\u202eb"])
async def test_a_bad_display_name_is_invalid_and_changes_nothing(
    connect: ClientFactory, name: str
) -> None:
    alice = await connect("alice")
    before = await alice.who_am_i()
    assert await status_of(alice.set_display_name(name)) is Status.INVALID_ARGUMENT
    assert await alice.who_am_i() == before
    assert (await alice.set_display_name("y" * 64)).display_name == "y" * 64  # the limit itself


async def test_a_wrong_current_password_changes_nothing(connect: ClientFactory) -> None:
    alice = await connect("alice")
    other = await signed_in_as(connect, alice, PASSWORD)
    assert (
        await status_of(alice.change_password("not my password", NEW_PASSWORD))
        is Status.PERMISSION_DENIED
    )
    assert await status_of(alice.change_password(PASSWORD, "short")) is Status.INVALID_ARGUMENT
    assert await status_of(alice.change_password(PASSWORD, PASSWORD)) is Status.INVALID_ARGUMENT
    await other.refresh()  # the other session lives on
    await other.who_am_i()
    await signed_in_as(connect, alice, PASSWORD)  # the old password still signs in


async def test_changing_the_password_ends_the_other_sessions_only(
    connect: ClientFactory,
) -> None:
    alice = await connect("alice")
    other = await signed_in_as(connect, alice, PASSWORD)
    async with other.session() as others, alice.session() as mine:
        await alice.change_password(PASSWORD, NEW_PASSWORD)
        with pytest.raises(GRPCError) as err:
            await others.wait_for(lambda f: False)
        assert err.value.status is Status.UNAUTHENTICATED
        # This session goes on: its stream and its calls.
        room = await create_room(alice, "still here")
        await mine.send(room.id, "hello")
        await mine.wait_for(lambda f: f.ack is not None)
    assert await status_of(other.who_am_i()) is Status.UNAUTHENTICATED
    assert await status_of(other.refresh()) is Status.UNAUTHENTICATED
    await alice.refresh()
    await alice.who_am_i()
    await signed_in_as(connect, alice, NEW_PASSWORD)
    stale = await connect(sign_up=False)
    assert await status_of(stale.sign_in(alice.user.username, PASSWORD)) is Status.UNAUTHENTICATED


async def test_wrong_current_passwords_meet_the_sign_in_throttle(
    crab: Crab, connect: ClientFactory
) -> None:
    alice = await connect("alice")
    stored = await crab.database.read(users.password_hash, alice.user.id)
    free = crab.settings.limits.sign_in_failures
    statuses = [
        await status_of(alice.change_password(f"guess {n}", NEW_PASSWORD)) for n in range(free + 1)
    ]
    # The allowed failures, then the account backs off from this address, as for sign-in.
    assert statuses == [Status.PERMISSION_DENIED] * free + [Status.RESOURCE_EXHAUSTED]
    assert await crab.database.read(users.password_hash, alice.user.id) == stored
    assert (await alice.who_am_i()).id == alice.user.id  # the session itself goes on
