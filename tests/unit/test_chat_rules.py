"""The chat and send rules (crab/core/services/chats.py, messages.py) on a
Database over a temp SQLite file: no broker, no worker, no gRPC server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Connection

from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import ChatKind, Message, User
from crab.core.services import chats, messages
from crab.core.storage import chats as chat_store
from crab.core.storage import users
from crab.core.storage.database import Database
from crab.errors import NotFound

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _two(conn: Connection) -> tuple[User, User]:
    return users.insert(conn, "alice", "Alice", "hash", T0), users.insert(
        conn, "bob", "Bob", "hash", T0
    )


@pytest.fixture
async def people(database: Database) -> tuple[User, User]:
    return await database.write(_two)


async def test_creating_a_room_makes_its_creator_a_member(
    database: Database, people: tuple[User, User]
) -> None:
    alice, _ = people
    out: ev.Published = []
    room = await database.write(chats.handle_create_room, cmd.CreateRoom(alice.id, "team"), out)
    assert (room.kind, room.name, room.last_message_id) == (ChatKind.ROOM, "team", 0)
    assert await database.read(chat_store.member_ids, room.id) == [alice.id]
    assert out == [(ev.user_topic(alice.id), ev.ChatJoined(alice.id, room))]


async def test_leaving_tells_me_and_the_members_and_only_members_leave(
    database: Database, people: tuple[User, User]
) -> None:
    alice, bob = people
    room = await database.write(chats.handle_create_room, cmd.CreateRoom(alice.id, "team"), [])
    with pytest.raises(NotFound):  # bob is not in it
        await database.write(chats.handle_leave, cmd.LeaveChat(bob.id, room.id), [])
    out: ev.Published = []
    await database.write(chats.handle_leave, cmd.LeaveChat(alice.id, room.id), out)
    assert out == [
        (ev.user_topic(alice.id), ev.ChatLeft(alice.id, room.id)),
        (ev.chat_topic(room.id), ev.MemberLeft(room.id, alice)),
    ]
    with pytest.raises(NotFound):  # gone already
        await database.write(chats.handle_leave, cmd.LeaveChat(alice.id, room.id), [])


async def test_only_members_send_and_a_resend_gets_the_first_message(
    database: Database, people: tuple[User, User]
) -> None:
    alice, bob = people
    room = await database.write(chats.handle_create_room, cmd.CreateRoom(alice.id, "team"), [])
    group = [
        cmd.SendMessage(alice.id, room.id, "a-1", "one"),
        cmd.SendMessage(bob.id, room.id, "b-1", "not a member"),
        cmd.SendMessage(alice.id, room.id, "a-2", "two"),
        cmd.SendMessage(alice.id, room.id, "a-1", "one"),  # the same send twice in a group
    ]
    stored = await database.write(messages.store_sends, group)
    first, refused, second, again = stored.outcomes
    assert isinstance(refused.error, NotFound)
    assert isinstance(first.result, Message) and isinstance(second.result, Message)
    assert (first.result.id, second.result.id) == (1, 2)  # gap-free, in order
    assert again.result == first.result
    assert [event for _, event in stored.published] == [
        ev.MessageCreated(first.result),
        ev.MessageCreated(second.result),
    ]
    # Sent again later (a client's retry): the stored one, published again, no new id.
    out: ev.Published = []
    resent = await database.write(messages.handle_send, group[0], out)
    assert resent == first.result
    assert out == [(ev.chat_topic(room.id), ev.MessageCreated(first.result))]
    page = await database.read(chat_store.summaries, alice.id)
    assert page[0].chat.last_message_id == 2 and page[0].unread_count == 0  # own messages read
