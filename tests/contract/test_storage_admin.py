"""The storage an admin's commands use (`crab user ...`, `crab room ...`) and
the servers' periodic check of open streams, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.admin import ACCOUNT_DELETED, ACCOUNT_DISABLED
from crab.core.domain.models import ChatKind
from crab.core.storage import (
    chats,
    identities,
    invites,
    message_changes,
    rooms,
    sessions,
    tables,
    users,
)
from crab.core.storage.database import Database
from tests.contract.test_storage import T0, add_user, room_with, store

LATER = T0 + timedelta(days=30)


async def test_disabling_refuses_sign_in_and_refresh_until_enabled(database: Database) -> None:
    def setup(conn: Connection) -> int:
        alice = add_user(conn, "alice")
        sessions.create(conn, alice.id, "h1", T0, LATER)
        return alice.id

    alice = await database.write(setup)
    assert await database.read(users.sign_in_refusal, alice) is None
    assert await database.read(sessions.refresh_refusal, "h1") is None
    assert (await database.read(users.account, "alice")).state == "active"  # type: ignore[union-attr]

    await database.write(users.set_disabled, alice, T0)
    assert await database.read(users.sign_in_refusal, alice) == ACCOUNT_DISABLED
    assert await database.read(sessions.refresh_refusal, "h1") == ACCOUNT_DISABLED
    assert await database.read(sessions.refresh_refusal, "unknown") is None
    found = await database.read(users.account, "alice")
    assert found is not None and found.state == "disabled" and found.disabled_at == T0

    await database.write(users.set_disabled, alice, None)
    assert await database.read(users.sign_in_refusal, alice) is None
    assert await database.read(users.sign_in_refusal, 999) == ACCOUNT_DELETED  # no such row


async def test_a_users_sessions_listed_revoked_one_by_one_and_checked_in_bulk(
    database: Database,
) -> None:
    def setup(conn: Connection) -> tuple[int, int, int, int, int]:
        alice, bob = add_user(conn, "alice"), add_user(conn, "bob")
        one = sessions.create(conn, alice.id, "h1", T0, LATER)
        two = sessions.create(conn, alice.id, "h2", T0, LATER)
        bobs = sessions.create(conn, bob.id, "h3", T0, LATER)
        return alice.id, bob.id, one, two, bobs

    alice, _, one, two, bobs = await database.write(setup)
    listed = await database.read(sessions.of_user, alice)
    assert [s.id for s in listed] == [two, one]  # newest first
    assert all(s.active(T0) and not s.active(LATER) for s in listed)

    # Another user's session, or one already revoked, is not revoked again.
    assert not await database.write(sessions.revoke_of_user, bobs, alice, T0)
    assert await database.write(sessions.revoke_of_user, one, alice, T0)
    assert not await database.write(sessions.revoke_of_user, one, alice, T0)
    listed = await database.read(sessions.of_user, alice)
    assert [(s.id, s.revoked_at) for s in listed] == [(two, None), (one, T0)]

    wanted = [one, two, bobs, 12345]
    assert await database.read(sessions.active_among, wanted, T0) == {two, bobs}
    assert await database.read(sessions.active_among, wanted, LATER) == set()  # expired
    assert await database.read(sessions.active_among, [], T0) == set()


async def test_a_deleted_account_keeps_its_messages_and_frees_its_name(
    database: Database,
) -> None:
    def setup(conn: Connection) -> tuple[int, int, int, int]:
        alice, bob, carol = add_user(conn, "alice"), add_user(conn, "bob"), add_user(conn, "carol")
        chat = room_with(conn, alice, bob)
        direct = chats.create(conn, ChatKind.DIRECT, "", alice.id, T0, chats.direct_key(1, 2))
        chats.add_member(conn, direct.id, alice.id, T0)
        chats.add_member(conn, direct.id, bob.id, T0)
        store(conn, chat, alice, "hello from alice")
        invites.insert(conn, alice.id, carol.id, chat, invites.room_key(chat, carol.id), T0)
        invites.insert(conn, carol.id, alice.id, None, invites.direct_key(1, 3), T0)
        identities.link(conn, "https://idp", "sub-alice", alice.id, T0)
        return alice.id, bob.id, chat, direct.id

    alice, bob, chat, direct = await database.write(setup)

    def delete(conn: Connection) -> list[int]:
        users.mark_deleted(conn, alice, T0)
        identities.unlink_all(conn, alice)
        invites.delete_of_user(conn, alice)
        return chats.leave_all(conn, alice)

    assert sorted(await database.write(delete)) == sorted([chat, direct])

    gone = await database.read(users.by_id, alice)
    assert gone is not None and gone.display_name == "deleted account"
    assert gone.username.startswith("~")
    assert await database.read(users.is_deleted, alice)
    assert not await database.read(users.is_deleted, bob)
    assert await database.read(users.sign_in_refusal, alice) == ACCOUNT_DELETED
    assert await database.read(users.account, "alice") is None  # the name is free
    await database.write(users.insert, "alice", "New Alice", "hash", T0)
    assert [u.username for u in await database.read(users.search, "alice", 10)] == ["alice"]
    assert await database.read(users.search, "deleted", 10) == []

    page = await database.read(tables_page, chat)
    assert page == [("hello from alice", alice)]  # the message stays, sender the same row
    assert await database.read(chats.member_ids, chat) == [bob]
    assert await database.read(chats.member_ids, direct) == [bob]
    assert await database.read(identities.user_for, "https://idp", "sub-alice") is None
    assert await database.read(invites.received, 3) == []
    assert await database.read(invites.sent, 3) == []

    listed = await database.read(users.accounts)
    assert [(a.username, a.state) for a in listed] == [
        ("alice", "active"),
        ("bob", "active"),
        ("carol", "active"),
    ]
    everyone = await database.read(users.accounts, True)
    assert [(a.id, a.state) for a in everyone][-1] == (alice, "deleted")


def tables_page(conn: Connection, chat_id: int) -> list[tuple[str, int]]:
    m = tables.messages
    query = sa.select(m.c.text, m.c.sender_id).where(m.c.chat_id == chat_id).order_by(m.c.seq)
    return [(row.text, row.sender_id) for row in conn.execute(query)]


async def test_rooms_listed_found_by_name_and_deleted_with_all_they_hold(
    database: Database,
) -> None:
    def setup(conn: Connection) -> tuple[int, int, int]:
        alice, bob = add_user(conn, "alice"), add_user(conn, "bob")
        general = room_with(conn, alice, bob, name="general")
        other = room_with(conn, bob, name="general")
        kept = room_with(conn, alice, name="kept")
        direct = chats.create(conn, ChatKind.DIRECT, "", alice.id, T0, chats.direct_key(1, 2))
        chats.add_member(conn, direct.id, alice.id, T0)
        store(conn, general, alice, "searchable words", "more words")
        store(conn, kept, alice, "searchable kept")
        row_id = (
            conn.execute(
                sa.select(tables.messages.c.id).where(tables.messages.c.chat_id == general)
            )
            .scalars()
            .first()
        )
        message_changes.add_reaction(conn, row_id, bob.id, "👍", T0)
        conn.execute(sa.insert(tables.mentions).values(user_id=bob.id, chat_id=general, seq=1))
        conn.execute(
            sa.insert(tables.calls).values(
                id="call1",
                chat_id=general,
                started_by=alice.id,
                video=False,
                status=3,
                started_at=T0,
            )
        )
        conn.execute(
            sa.insert(tables.call_members).values(call_id="call1", user_id=bob.id, state=1)
        )
        invites.insert(conn, alice.id, bob.id, general, "room:x", T0)
        return general, other, kept

    general, other, kept = await database.write(setup)
    listed = await database.read(rooms.list_all)
    assert [(r.id, r.name, r.owner, r.members, r.messages) for r in listed] == [
        (general, "general", "alice", 2, 2),
        (other, "general", "bob", 1, 0),
        (kept, "kept", "alice", 1, 1),
    ]  # the personal conversation is no room
    assert [r.id for r in await database.read(rooms.named, "general")] == [general, other]
    assert await database.read(rooms.named, "General") == []  # exact names only
    assert (await database.read(rooms.by_id, kept)).name == "kept"  # type: ignore[union-attr]
    assert await database.read(rooms.by_id, 4) is None  # the direct chat

    assert sorted(await database.write(rooms.delete, general)) == [1, 2]
    assert await database.read(chats.get, general) is None
    assert [r.id for r in await database.read(rooms.list_all)] == [other, kept]
    assert await database.read(chats.existing, [general, other, kept, 99]) == {other, kept}
    assert await database.read(chats.existing, []) == set()

    def left(conn: Connection) -> dict[str, int]:
        counts = {}
        for table in (tables.messages, tables.reactions, tables.mentions, tables.calls):
            counts[table.name] = conn.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
        counts["invites"] = len(invites.received(conn, 2))
        counts["call_members"] = conn.execute(
            sa.select(sa.func.count()).select_from(tables.call_members)
        ).scalar_one()
        if conn.dialect.name == "sqlite":  # the full-text index followed
            conn.execute(
                sa.text("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
            )
        return counts

    assert await database.write(left) == {
        "messages": 1,
        "reactions": 0,
        "mentions": 0,
        "calls": 0,
        "invites": 0,
        "call_members": 0,
    }
