"""The invite rules (crab/core/services/invites.py), on a Database over a
temp SQLite file: no broker, no worker, no gRPC server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Connection

from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import ChatKind, User
from crab.core.services import invites
from crab.core.storage import chats, users
from crab.core.storage import invites as invite_store
from crab.core.storage.database import Database
from crab.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _people_and_room(conn: Connection) -> tuple[User, User, User, int]:
    alice, bob, carol = (
        users.insert(conn, n, n.title(), "hash", T0) for n in ("alice", "bob", "carol")
    )
    room = chats.create(conn, ChatKind.ROOM, "team", alice.id, T0)
    chats.add_member(conn, room.id, alice.id, T0)
    return alice, bob, carol, room.id


@pytest.fixture
async def people(database: Database) -> tuple[User, User, User, int]:
    """alice (in the room), bob and carol (not), and the room's id."""
    return await database.write(_people_and_room)


async def test_inviting_yourself_is_refused(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    alice, _, _, room = people
    out: ev.Published = []
    with pytest.raises(FailedPrecondition, match="yourself"):
        await database.write(
            invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, alice.id), out
        )
    with pytest.raises(FailedPrecondition, match="yourself"):
        await database.write(
            invites.handle_invite_to_direct, cmd.InviteToDirect(alice.id, alice.id), out
        )
    assert out == []


async def test_a_room_invite_needs_the_inviter_in_the_room_and_an_invitee_who_exists(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    alice, bob, carol, room = people
    out: ev.Published = []
    with pytest.raises(NotFound, match="chat"):  # bob is not in it: it does not exist for him
        await database.write(
            invites.handle_invite_to_room, cmd.InviteToRoom(bob.id, room, carol.id), out
        )
    with pytest.raises(NotFound, match="chat"):
        await database.write(
            invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room + 99, bob.id), out
        )
    with pytest.raises(NotFound, match="user"):
        await database.write(
            invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, 10**9), out
        )


async def test_a_member_cannot_be_invited_again_nor_invited_twice(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    alice, bob, _, room = people
    out: ev.Published = []
    invite = await database.write(
        invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, bob.id), out
    )
    assert (invite.inviter, invite.invitee) == (alice, bob)
    assert out == [(ev.user_topic(bob.id), ev.InviteReceived(invite))]
    # A whole sentence: who, and to what (issue 13, bug 18).
    with pytest.raises(AlreadyExists, match=r"^bob already has a pending invite to #team$"):
        await database.write(
            invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, bob.id), []
        )
    await database.write(invites.handle_answer, cmd.AnswerInvite(bob.id, invite.id, True), [])
    with pytest.raises(AlreadyExists, match="already a member"):
        await database.write(
            invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, bob.id), []
        )


async def test_a_personal_chat_has_exactly_two_people(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    alice, bob, carol, _ = people
    invite = await database.write(
        invites.handle_invite_to_direct, cmd.InviteToDirect(alice.id, bob.id), []
    )
    out: ev.Published = []
    answer = await database.write(
        invites.handle_answer, cmd.AnswerInvite(bob.id, invite.id, True), out
    )
    assert answer.accepted and answer.chat is not None
    assert answer.chat.kind == ChatKind.DIRECT and answer.chat.name == "alice"  # bob's view
    # Both joined, each told on their own topic; both told of the answer.
    joined = {topic for topic, event in out if isinstance(event, ev.ChatJoined)}
    assert joined == {ev.user_topic(alice.id), ev.user_topic(bob.id)}
    answered = {topic for topic, event in out if isinstance(event, ev.InviteAnswered)}
    assert answered == {ev.user_topic(alice.id), ev.user_topic(bob.id)}
    with pytest.raises(FailedPrecondition, match="exactly two people"):
        await database.write(
            invites.handle_invite_to_room,
            cmd.InviteToRoom(alice.id, answer.chat.id, carol.id),
            [],
        )
    with pytest.raises(AlreadyExists, match="personal conversation"):
        await database.write(
            invites.handle_invite_to_direct, cmd.InviteToDirect(bob.id, alice.id), []
        )


async def test_a_second_personal_invite_says_who_invited_whom(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    alice, bob, _, _ = people
    await database.write(invites.handle_invite_to_direct, cmd.InviteToDirect(alice.id, bob.id), [])
    with pytest.raises(
        AlreadyExists,
        match=r"^bob already has a pending invite to a personal conversation with you$",
    ):
        await database.write(
            invites.handle_invite_to_direct, cmd.InviteToDirect(alice.id, bob.id), []
        )
    with pytest.raises(
        AlreadyExists,
        match=r"^alice has already invited you to a personal conversation: /accept it$",
    ):
        await database.write(
            invites.handle_invite_to_direct, cmd.InviteToDirect(bob.id, alice.id), []
        )


async def test_only_the_invitee_answers(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    alice, bob, carol, room = people
    invite = await database.write(
        invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, bob.id), []
    )
    with pytest.raises(PermissionDenied):  # the inviter sees it, but cannot answer it
        await database.write(invites.handle_answer, cmd.AnswerInvite(alice.id, invite.id, True), [])
    with pytest.raises(NotFound):  # to anyone else it does not exist
        await database.write(invites.handle_answer, cmd.AnswerInvite(carol.id, invite.id, True), [])
    out: ev.Published = []
    answer = await database.write(
        invites.handle_answer, cmd.AnswerInvite(bob.id, invite.id, False), out
    )
    assert not answer.accepted and answer.chat is None
    assert all(isinstance(event, ev.InviteAnswered) for _, event in out)
    assert await database.read(chats.member_ids, room) == [alice.id]
    with pytest.raises(NotFound):  # answered invites are gone
        await database.write(invites.handle_answer, cmd.AnswerInvite(bob.id, invite.id, True), [])


async def test_a_refused_rule_stores_nothing(
    database: Database, people: tuple[User, User, User, int]
) -> None:
    """A rule that raises rolls its transaction back whole."""
    alice, bob, _, room = people
    invite = await database.write(
        invites.handle_invite_to_room, cmd.InviteToRoom(alice.id, room, bob.id), []
    )
    with pytest.raises(PermissionDenied):
        await database.write(invites.handle_answer, cmd.AnswerInvite(alice.id, invite.id, True), [])
    received = await database.read(invite_store.received, bob.id)
    assert [i.id for i in received] == [invite.id]
