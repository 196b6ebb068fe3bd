"""Room admin by its owner, through a real server and three real clients:
rename, topic, removing a member (who loses access at once), each refused
to others with a clear status and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, new_request_id
from crab.config import Limits, Rate
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.chats import create_room, join
from tests.helpers.server import LIFTED, PASSWORD, ClientFactory, make_settings


async def trio(connect: ClientFactory) -> tuple[CrabClient, CrabClient, CrabClient, pb.Chat]:
    """Alice owns a room; Bob and Carol are members."""
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    room = await create_room(alice, "ops")
    await join(alice, bob, room)
    await join(alice, carol, room)
    return alice, bob, carol, room


async def status_of(call: object) -> Status:
    with pytest.raises(GRPCError) as err:
        await call  # type: ignore[misc]
    return err.value.status


async def room_as_seen(client: CrabClient, chat_id: int) -> pb.Chat:
    detail = await client.chat(chat_id)
    assert detail.chat is not None
    return detail.chat


async def test_the_owner_is_the_creator_and_readers_say_so(connect: ClientFactory) -> None:
    alice, bob, _, room = await trio(connect)
    assert room.owner_id == alice.user.id and room.topic == ""
    assert (await room_as_seen(bob, room.id)).owner_id == alice.user.id
    (summary,) = await bob.my_chats()
    assert summary.chat is not None and summary.chat.owner_id == alice.user.id


async def test_rename_and_topic_reach_members_live_and_in_reads(connect: ClientFactory) -> None:
    alice, bob, carol, room = await trio(connect)
    async with bob.session() as bobs, carol.session() as carols:
        renamed = await alice.rename_room(room.id, "  operations ")
        assert renamed.name == "operations"
        for live in (bobs, carols):
            frame = await live.wait_for(lambda f: f.chat_updated is not None)
            assert frame.chat_updated.name == "operations"
        topical = await alice.set_topic(room.id, "deploys on friday, never")
        assert topical.topic == "deploys on friday, never" and topical.name == "operations"
        for live in (bobs, carols):
            frame = await live.wait_for(lambda f: f.chat_updated is not None)
            assert frame.chat_updated.topic == "deploys on friday, never"
    seen = await room_as_seen(carol, room.id)
    assert (seen.name, seen.topic) == ("operations", "deploys on friday, never")
    (summary,) = await bob.my_chats()
    assert summary.chat is not None and summary.chat.topic == "deploys on friday, never"
    assert (await alice.set_topic(room.id, "")).topic == ""  # empty clears it
    assert (await room_as_seen(bob, room.id)).topic == ""


async def test_a_member_who_is_not_the_owner_is_refused_and_nothing_changes(
    connect: ClientFactory,
) -> None:
    alice, bob, carol, room = await trio(connect)
    assert await status_of(bob.rename_room(room.id, "mine")) is Status.PERMISSION_DENIED
    assert await status_of(bob.set_topic(room.id, "mine")) is Status.PERMISSION_DENIED
    assert await status_of(bob.remove_member(room.id, carol.user.id)) is Status.PERMISSION_DENIED
    assert await status_of(bob.remove_member(room.id, alice.user.id)) is Status.PERMISSION_DENIED
    seen = await room_as_seen(alice, room.id)
    assert (seen.name, seen.topic) == ("ops", "")
    members = {u.id for u in (await alice.chat(room.id)).members}
    assert members == {alice.user.id, bob.user.id, carol.user.id}


async def test_outsiders_get_not_found_and_direct_chats_have_no_admin(
    connect: ClientFactory,
) -> None:
    alice, bob, _, room = await trio(connect)
    dave = await connect("dave")
    assert await status_of(dave.rename_room(room.id, "x")) is Status.NOT_FOUND
    assert await status_of(dave.set_topic(room.id, "x")) is Status.NOT_FOUND
    assert await status_of(dave.remove_member(room.id, bob.user.id)) is Status.NOT_FOUND
    assert await status_of(alice.rename_room(10**12, "x")) is Status.NOT_FOUND
    invite = await alice.invite_to_direct(dave.user.id)
    answer = await dave.answer_invite(invite.id, True)
    assert answer.chat is not None and answer.chat.owner_id == 0
    direct = answer.chat.id
    assert await status_of(alice.rename_room(direct, "x")) is Status.FAILED_PRECONDITION
    assert await status_of(dave.set_topic(direct, "x")) is Status.FAILED_PRECONDITION
    assert await status_of(alice.remove_member(direct, dave.user.id)) is Status.FAILED_PRECONDITION
    assert (await room_as_seen(dave, direct)).topic == ""


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("", None),
        ("   ", None),
        ("x" * 65, None),
        ("bad\x1b[2Jname", None),
        ("two\nlines", None),
        ("ali\u200bce", None),
        (None, "t" * 301),
        (None, "bell\x07"),
        (None, "two\nlines"),
        (None, "tab\there"),
    ],
)
async def test_garbage_is_invalid_and_changes_nothing(
    connect: ClientFactory, name: str | None, topic: str | None
) -> None:
    alice, bob, _, room = await trio(connect)
    async with bob.session() as live:
        if name is not None:
            assert await status_of(alice.rename_room(room.id, name)) is Status.INVALID_ARGUMENT
        if topic is not None:
            assert await status_of(alice.set_topic(room.id, topic)) is Status.INVALID_ARGUMENT
        # The next change is the first bob hears of: nothing went out before it.
        await alice.set_topic(room.id, "marker")
        frame = await live.wait_for(lambda f: f.chat_updated is not None)
        assert (frame.chat_updated.name, frame.chat_updated.topic) == ("ops", "marker")
    assert (await alice.set_topic(room.id, "t" * 300)).topic == "t" * 300  # the limit itself


async def test_removing_bad_targets_is_refused(connect: ClientFactory) -> None:
    alice, bob, _, room = await trio(connect)
    outsider = await connect("dave")
    assert await status_of(alice.remove_member(room.id, alice.user.id)) is Status.INVALID_ARGUMENT
    assert await status_of(alice.remove_member(room.id, 10**12)) is Status.NOT_FOUND
    assert await status_of(alice.remove_member(room.id, outsider.user.id)) is Status.NOT_FOUND
    assert await status_of(alice.remove_member(room.id, -1)) is Status.NOT_FOUND
    assert len((await bob.chat(room.id)).members) == 3


async def test_a_removed_member_loses_access_at_once_and_can_come_back(
    connect: ClientFactory,
) -> None:
    alice, bob, carol, room = await trio(connect)
    async with bob.session() as bobs, carol.session() as carols, alice.session() as alices:
        await alice.remove_member(room.id, bob.user.id)
        left = await bobs.wait_for(lambda f: f.chat_left is not None)
        assert left.chat_left.chat_id == room.id
        for live in (carols, alices):
            frame = await live.wait_for(lambda f: f.member_removed is not None)
            removed = frame.member_removed
            assert removed.chat_id == room.id
            assert (removed.user.id, removed.by.id) == (bob.user.id, alice.user.id)
        # Every call on the chat answers as for a chat that does not exist.
        assert await status_of(bob.chat(room.id)) is Status.NOT_FOUND
        assert await status_of(bob.history(room.id)) is Status.NOT_FOUND
        assert await status_of(bob.mark_read(room.id, 1)) is Status.NOT_FOUND
        cid = await bobs.send(room.id, "am I still here?")
        error = await bobs.wait_for(lambda f: f.send_error is not None)
        assert (error.send_error.client_message_id, error.send_error.code) == (cid, "NOT_FOUND")
        assert room.id not in [s.chat.id for s in await bob.my_chats() if s.chat]
        # Bob's stream no longer follows the room: carol's next message skips him.
        await carols.send(room.id, "after bob")
        await alices.wait_for(lambda f: f.message is not None and f.message.text == "after bob")
        await alice.set_topic(room.id, "after bob too")
        await carols.wait_for(lambda f: f.chat_updated is not None)
        await bobs.done_sending()
        rest = []
        while (frame := await bobs.recv()) is not None:
            rest.append(frame)
        assert not [f for f in rest if f.message is not None or f.chat_updated is not None]
    members = {u.id for u in (await alice.chat(room.id)).members}
    assert members == {alice.user.id, carol.user.id}
    await join(alice, bob, room)  # invited back, he is a member again
    assert (await room_as_seen(bob, room.id)).id == room.id


async def test_retries_with_the_same_request_id_act_once(connect: ClientFactory) -> None:
    alice, bob, _, room = await trio(connect)
    rename = new_request_id()
    first = await alice.rename_room(room.id, "one", rename)
    await alice.rename_room(room.id, "two")
    again = await alice.rename_room(room.id, "one", rename)
    assert again == first  # the first answer, not a second rename
    assert (await room_as_seen(alice, room.id)).name == "two"

    topic = new_request_id()
    first = await alice.set_topic(room.id, "t1", topic)
    assert await alice.set_topic(room.id, "t1", topic) == first

    removal = new_request_id()
    await alice.remove_member(room.id, bob.user.id, removal)
    await alice.remove_member(room.id, bob.user.id, removal)  # not NOT_FOUND: the first answer
    assert await status_of(alice.remove_member(room.id, bob.user.id)) is Status.NOT_FOUND


async def test_each_admin_action_has_its_rate_limit(tmp_path: Path) -> None:
    one = Rate(1, 3600)
    lifted = {k: v for k, v in LIFTED.items() if not k.endswith(_ADMIN_LIMITS)}
    limits = Limits(**lifted, renames_per_user=one, topics_per_user=one, removals_per_user=one)
    app = await Crab.open(make_settings(tmp_path, limits=limits))
    await app.start_worker()
    await app.start_server()
    made: list[CrabClient] = []
    try:
        for name in ("alice", "bob", "carol"):
            made.append(CrabClient("127.0.0.1", app.port))
            await made[-1].sign_up(name, PASSWORD)
        alice, bob, carol = made
        room = await create_room(alice, "ops")
        await join(alice, bob, room)
        await join(alice, carol, room)
        await alice.rename_room(room.id, "one")
        await alice.set_topic(room.id, "one")
        await alice.remove_member(room.id, bob.user.id)
        assert await status_of(alice.rename_room(room.id, "two")) is Status.RESOURCE_EXHAUSTED
        assert await status_of(alice.set_topic(room.id, "two")) is Status.RESOURCE_EXHAUSTED
        assert (
            await status_of(alice.remove_member(room.id, carol.user.id))
            is Status.RESOURCE_EXHAUSTED
        )
        seen = await room_as_seen(carol, room.id)
        assert (seen.name, seen.topic) == ("one", "one")  # the refused ones changed nothing
        # Input is judged before the limit: a typo costs nothing.
        assert await status_of(alice.rename_room(room.id, "")) is Status.INVALID_ARGUMENT
    finally:
        for client in made:
            client.close()
        await app.close()


_ADMIN_LIMITS = ("renames_per_user", "topics_per_user", "removals_per_user")
