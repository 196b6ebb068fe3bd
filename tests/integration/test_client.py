"""The client's typed methods, through a real server: plain values in, the
server's replies out, with the signed-in user's token."""

from __future__ import annotations

from crab.client.connection import new_request_id
from tests.helpers.server import ClientFactory


async def test_a_room_from_creation_to_leaving_through_the_typed_methods(
    connect: ClientFactory,
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    assert (await alice.who_am_i()).id == alice.user.id

    request_id = new_request_id()
    room = await alice.create_room("ops", request_id)
    assert (await alice.create_room("ops", request_id)).id == room.id  # a retry: the same room
    (found,) = await alice.search_users(bob.user.username, 5)
    assert found.id == bob.user.id

    invite = await alice.invite_to_room(room.id, bob.user.id, new_request_id())
    pending = await bob.my_invites()
    assert [i.id for i in pending.received] == [invite.id]
    answer = await bob.answer_invite(invite.id, True, new_request_id())
    assert answer.accepted and answer.chat.id == room.id
    detail = await bob.chat(room.id)
    assert {u.id for u in detail.members} == {alice.user.id, bob.user.id}

    async with alice.session() as live:
        for text in ("one", "two", "three"):
            await live.send(room.id, text)
        await live.collect(lambda f: f.ack is not None, 3)
    page = await bob.history(room.id, limit=2)
    assert [m.text for m in page.messages] == ["three", "two"] and page.has_more
    older = await bob.history(room.id, before_id=page.messages[-1].id)
    assert [m.text for m in older.messages] == ["one"] and not older.has_more
    await bob.mark_read(room.id, page.messages[0].id)
    (summary,) = await bob.my_chats()
    assert summary.chat.id == room.id and summary.unread_count == 0

    await bob.leave_chat(room.id)
    assert await bob.my_chats() == []
    direct = await alice.invite_to_direct(bob.user.id)
    assert direct.invitee.id == bob.user.id
    await bob.sign_out()
