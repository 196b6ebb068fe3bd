"""The storage contract: every query module, the migrations and the worker's
write path, run once on SQLite and once on a real PostgreSQL (started for the
session by tests/helpers/services.py; each test gets a fresh database)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from crab.core.broker.memory import MemoryBroker
from crab.core.domain import commands as cmd
from crab.core.domain.models import Chat, ChatKind, Message, MessagePage, User
from crab.core.storage import chats, invites, messages, search, sessions, tables, users
from crab.core.storage.database import SCHEMA_HEAD, Database
from crab.core.storage.tables import metadata
from crab.core.worker.handlers import Worker
from crab.errors import AlreadyExists, Conflict

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_cids = itertools.count(1)


def add_user(conn: Connection, name: str, display: str | None = None) -> User:
    return users.insert(conn, name, display or name.title(), "hash", T0)


def room_with(conn: Connection, *people: User, name: str = "room") -> int:
    chat = chats.create(conn, ChatKind.ROOM, name, people[0].id, T0)
    for person in people:
        chats.add_member(conn, chat.id, person.id, T0)
    return chat.id


def store(
    conn: Connection, chat_id: int, sender: User, *texts: str, at: datetime = T0
) -> list[int]:
    """What the worker does: reserve ids, then insert the rows at once."""
    first = messages.next_seqs(conn, chat_id, len(texts))
    seqs = list(range(first, first + len(texts)))
    rows = [
        messages.row(chat_id, seq, sender.id, f"c{next(_cids)}", text, at)
        for seq, text in zip(seqs, texts, strict=True)
    ]
    messages.insert_many(conn, rows)
    return seqs


async def all_seqs(database: Database, chat_id: int) -> list[int]:
    page = await database.read(messages.page, chat_id, 0, 10_000)
    return sorted(m.id for m in page.messages)


def people(conn: Connection, *names: str) -> list[User]:
    return [add_user(conn, n) for n in names]


# ---- schema --------------------------------------------------------------------


async def test_migrations_create_exactly_the_schema_and_are_idempotent(
    database: Database,
) -> None:
    await database.migrate()  # every start runs it: the second time is a no-op

    def diff(conn: sa.Connection) -> list[object]:
        # The full-text index (migration 0004) is not in tables.py: only it is skipped.
        options = {"include_name": search.in_tables_py}
        return list(compare_metadata(MigrationContext.configure(conn, opts=options), metadata))

    def version_num(conn: Connection) -> object:
        return conn.scalar(sa.text("SELECT version_num FROM alembic_version"))

    assert await database.read(diff) == []
    version = await database.read(version_num)
    assert version == SCHEMA_HEAD


MIGRATE = "import asyncio, sys; from crab.core.storage.database import Database; "
MIGRATE += "asyncio.run(Database(sys.argv[1]).migrate())"


async def test_concurrent_first_starts_migrate_once(pg_database_url: str) -> None:
    """Processes starting at once on a new database (scaled out: PostgreSQL)."""
    starts = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE, pg_database_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    errors = [(await start.communicate())[1].decode() for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], "\n".join(errors)
    database = Database(pg_database_url)

    def version_num(conn: Connection) -> object:
        return conn.scalar(sa.text("SELECT version_num FROM alembic_version"))

    assert await database.read(version_num) == SCHEMA_HEAD
    await database.close()


# ---- users ---------------------------------------------------------------------


async def test_users_insert_read_and_unique_names(database: Database) -> None:
    def two(conn: Connection) -> tuple[User, User]:
        return add_user(conn, "alice", "Alice A."), add_user(conn, "bob")

    alice, bob = await database.write(two)
    assert alice.id != bob.id and alice.id > 0

    def check(conn: Connection) -> None:
        assert users.by_id(conn, alice.id) == alice
        assert users.by_id(conn, 10**12) is None
        assert users.by_ids(conn, [alice.id, bob.id, alice.id, 10**12]) == {
            alice.id: alice,
            bob.id: bob,
        }
        assert users.by_ids(conn, []) == {}
        assert users.credentials(conn, "alice") == (alice, "hash")
        assert users.credentials(conn, "carol") is None
        assert users.exists(conn, "bob") and not users.exists(conn, "carol")
        assert [u.username for u in users.list_all(conn)] == ["alice", "bob"]

    await database.read(check)
    # Names are stored lower-cased (the service does it), so the unique
    # constraint on the column is unique ignoring case.
    with pytest.raises(Conflict):
        await database.write(add_user, "alice", "Another Alice")
    assert len(await database.read(users.list_all)) == 2


async def test_user_search_ranks_escapes_wildcards_and_limits(database: Database) -> None:
    def fill(conn: Connection) -> None:
        for name, display in [
            ("ann", "Ann"),
            ("annabel", "Annabel Lee"),
            ("joanna", "Joanna"),
            ("zed", "Anne Zed"),
            ("bob", "100% Bob"),
            ("a_b", "Underscore"),
            ("axb", "Not Underscore"),
            ("back", "Back\\slash"),
        ]:
            add_user(conn, name, display)

    await database.write(fill)

    async def find(query: str, limit: int = 20) -> list[str]:
        return [u.username for u in await database.read(users.search, query, limit)]

    # exact, then username prefix (shorter first), then display-name
    # prefix, then anywhere; matching ignores case.
    assert await find("ANN") == ["ann", "annabel", "zed", "joanna"]
    assert await find("ann", limit=2) == ["ann", "annabel"]
    assert await find("%") == ["bob"]
    assert await find("_") == ["a_b"]
    assert await find("a_b") == ["a_b"]
    assert await find("\\") == ["back"]
    assert await find("nobody") == []


# ---- sessions ------------------------------------------------------------------


async def test_sessions_create_check_rotate_and_revoke(database: Database) -> None:
    later = T0 + timedelta(days=30)

    def setup(conn: Connection) -> tuple[User, User, int, int, int]:
        alice = add_user(conn, "alice")
        bob = add_user(conn, "bob")
        one = sessions.create(conn, alice.id, "h1", T0, later)
        two = sessions.create(conn, alice.id, "h2", T0, later)
        bobs = sessions.create(conn, bob.id, "h3", T0, later)
        return alice, bob, one, two, bobs

    alice, bob, one, two, bobs = await database.write(setup)
    assert len({one, two, bobs}) == 3
    longer = later + timedelta(days=1)

    def rotate(conn: Connection) -> None:
        assert sessions.is_active(conn, one, alice.id, T0)
        assert not sessions.is_active(conn, one, bob.id, T0)  # not bob's
        assert not sessions.is_active(conn, one, alice.id, later)  # expired
        # Refresh rotation, a compare-and-swap: the old token stops working
        # (it is remembered as spent), the new one works longer.
        assert sessions.rotate(conn, "h1", "hx", later, later) is None  # expired
        assert sessions.rotate(conn, "nope", "hx", T0, later) is None
        assert sessions.by_previous_refresh_hash(conn, "h1", T0) is None
        assert sessions.rotate(conn, "h1", "h1b", T0, longer) == (one, alice.id)
        assert sessions.rotate(conn, "h1", "h1c", T0, longer) is None
        assert sessions.by_previous_refresh_hash(conn, "h1", T0) == (one, alice.id)
        assert sessions.is_active(conn, one, alice.id, later)

    await database.write(rotate)
    with pytest.raises(Conflict):  # refresh hashes are unique
        await database.write(sessions.create, bob.id, "h2", T0, later)

    def revoke(conn: Connection) -> object:
        sessions.revoke(conn, one, T0 + timedelta(hours=1))
        assert not sessions.is_active(conn, one, alice.id, T0)
        assert sessions.rotate(conn, "h1b", "h1d", T0, longer) is None
        assert sessions.by_previous_refresh_hash(conn, "h1", T0) is None
        assert sessions.is_active(conn, two, alice.id, T0)
        sessions.revoke_all(conn, alice.id, T0 + timedelta(hours=2))
        assert not sessions.is_active(conn, two, alice.id, T0)
        assert sessions.is_active(conn, bobs, bob.id, T0)  # only alice's
        # Revoking again keeps the first revocation time.
        sessions.revoke(conn, one, T0 + timedelta(hours=3))
        return conn.scalar(
            sa.select(tables.sessions.c.revoked_at).where(tables.sessions.c.id == one)
        )

    revoked = await database.write(revoke)
    assert revoked == T0 + timedelta(hours=1)


# ---- chats ---------------------------------------------------------------------


async def test_rooms_members_and_positions(database: Database) -> None:
    def setup(conn: Connection) -> tuple[User, User, User, Chat]:
        alice, bob, carol = people(conn, "alice", "bob", "carol")
        room = chats.create(conn, ChatKind.ROOM, "team", alice.id, T0)
        chats.add_member(conn, room.id, alice.id, T0)
        chats.add_member(conn, room.id, bob.id, T0)
        return alice, bob, carol, room

    alice, bob, carol, room = await database.write(setup)
    assert room.kind == ChatKind.ROOM and room.last_message_id == 0

    def members(conn: Connection) -> None:
        assert chats.get(conn, room.id) == room
        assert chats.get(conn, 10**12) is None
        assert chats.is_member(conn, room.id, bob.id)
        assert not chats.is_member(conn, room.id, carol.id)
        assert sorted(chats.member_ids(conn, room.id)) == [alice.id, bob.id]
        assert chats.member_users(conn, room.id) == [alice, bob]
        store(conn, room.id, alice, "one", "two", "three")
        # A newcomer joins at the end: older history counts as read.
        chats.add_member(conn, room.id, carol.id, T0)
        assert chats.positions(conn, carol.id) == {room.id: 3}
        (summary,) = chats.summaries(conn, carol.id)
        assert summary.unread_count == 0 and summary.last_read_id == 3

    await database.write(members)
    with pytest.raises(Conflict):  # one membership per person
        await database.write(chats.add_member, room.id, carol.id, T0)

    def leave(conn: Connection) -> None:
        assert chats.remove_member(conn, room.id, bob.id)
        assert not chats.remove_member(conn, room.id, bob.id)
        assert chats.positions(conn, bob.id) == {}
        assert (chats.get(conn, room.id)) == dataclasses.replace(room, last_message_id=3)

    await database.write(leave)


async def test_one_direct_chat_per_pair_named_for_the_other(database: Database) -> None:
    def setup(conn: Connection) -> tuple[User, User, User, str, Chat]:
        alice, bob, carol = people(conn, "alice", "bob", "carol")
        key = chats.direct_key(bob.id, alice.id)
        assert key == chats.direct_key(alice.id, bob.id)
        direct = chats.create(conn, ChatKind.DIRECT, "", alice.id, T0, key)
        for person in (alice, bob):
            chats.add_member(conn, direct.id, person.id, T0)
        return alice, bob, carol, key, direct

    alice, bob, carol, key, direct = await database.write(setup)
    with pytest.raises(Conflict):
        await database.write(chats.create, ChatKind.DIRECT, "", bob.id, T0, key)

    def check(conn: Connection) -> None:
        assert (chats.direct_between(conn, bob.id, alice.id)) == direct
        assert chats.direct_between(conn, alice.id, carol.id) is None
        assert (chats.view(conn, direct, alice.id)).name == "bob"
        assert (chats.view(conn, direct, bob.id)).name == "alice"
        # Rooms have no key: any number of them.
        chats.create(conn, ChatKind.ROOM, "r", alice.id, T0)
        chats.create(conn, ChatKind.ROOM, "r", alice.id, T0)
        (summary,) = chats.summaries(conn, bob.id)
        assert summary.chat.name == "alice"

    await database.write(check)


async def test_summaries_unread_last_message_and_order(database: Database) -> None:
    def setup(conn: Connection) -> tuple[User, User, int, int]:
        alice, bob = people(conn, "alice", "bob")
        quiet = room_with(conn, alice, bob, name="quiet")
        busy = room_with(conn, alice, bob, name="busy")
        old = room_with(conn, alice, bob, name="old")
        store(conn, old, alice, "long ago", at=T0 + timedelta(minutes=1))
        store(conn, busy, bob, "a", "b", "c", at=T0 + timedelta(minutes=2))
        return alice, bob, quiet, busy

    alice, bob, quiet, busy = await database.write(setup)
    got = await database.read(chats.summaries, alice.id)
    assert [s.chat.name for s in got] == ["busy", "old", "quiet"]
    by_name = {s.chat.name: s for s in got}
    assert [by_name[n].unread_count for n in ("busy", "old", "quiet")] == [3, 1, 0]
    last = by_name["busy"].last_message
    assert last is not None and (last.id, last.text, last.sender) == (3, "c", bob)
    assert last.sent_at == T0 + timedelta(minutes=2)
    assert by_name["quiet"].last_message is None
    assert by_name["busy"].chat.id == busy and by_name["quiet"].chat.id == quiet


async def test_mark_read_moves_forward_only_and_never_past_the_end(
    database: Database,
) -> None:
    def setup(conn: Connection) -> tuple[User, User, int]:
        alice, bob = people(conn, "alice", "bob")
        room = room_with(conn, alice, bob)
        store(conn, room, bob, *[f"m{i}" for i in range(5)])
        return alice, bob, room

    alice, bob, room = await database.write(setup)

    async def read_position() -> tuple[int, int]:
        (s,) = await database.read(chats.summaries, alice.id)
        return s.last_read_id, s.unread_count

    async def mark(seq: int) -> None:
        await database.write(chats.mark_read, room, alice.id, seq)

    assert await read_position() == (0, 5)
    await mark(3)
    assert await read_position() == (3, 2)
    await mark(1)  # never back
    assert await read_position() == (3, 2)
    await mark(99)  # never past the end
    assert await read_position() == (5, 0)
    await database.write(store, room, bob, "m5")
    # Ids a client may send (uint64 on the wire; int64 in the database).
    for huge in (2**31, 2**40, 2**63 - 1):
        await mark(huge)
        assert await read_position() == (6, 0)


# ---- invites -------------------------------------------------------------------


async def test_invites_pending_keys_lists_and_delete(database: Database) -> None:
    def setup(conn: Connection) -> tuple[User, User, User, int, int, int]:
        alice, bob, carol = people(conn, "alice", "bob", "carol")
        room = room_with(conn, alice, name="team")
        to_room = invites.insert(conn, alice.id, bob.id, room, invites.room_key(room, bob.id), T0)
        direct_key = invites.direct_key(carol.id, alice.id)
        assert direct_key == invites.direct_key(alice.id, carol.id)
        to_direct = invites.insert(conn, carol.id, alice.id, None, direct_key, T0)
        return alice, bob, carol, room, to_room, to_direct

    alice, bob, carol, room, to_room, to_direct = await database.write(setup)
    for key in (invites.room_key(room, bob.id), invites.direct_key(alice.id, carol.id)):
        with pytest.raises(Conflict):  # one pending invite per room+person / pair
            await database.write(invites.insert, alice.id, carol.id, None, key, T0)

    def check(conn: Connection) -> None:
        assert invites.key_taken(conn, invites.room_key(room, bob.id))
        assert not invites.key_taken(conn, invites.room_key(room, carol.id))
        got = invites.get(conn, to_room)
        assert got is not None and got.chat is not None
        assert (got.inviter, got.invitee, got.chat.id, got.chat.name) == (alice, bob, room, "team")
        assert got.created_at == T0
        direct = invites.get(conn, to_direct)
        assert direct is not None and direct.chat is None and direct.invitee == alice
        assert [i.id for i in invites.received(conn, alice.id)] == [to_direct]
        assert [i.id for i in invites.sent(conn, alice.id)] == [to_room]
        assert invites.received(conn, carol.id) == []
        invites.delete(conn, to_direct)
        assert invites.get(conn, to_direct) is None
        invites.delete_for_room(conn, room, bob.id)
        assert invites.get(conn, to_room) is None
        assert invites.sent(conn, alice.id) == []

    await database.write(check)


async def test_an_answered_invites_id_is_never_reused(database: Database) -> None:
    """A retried answer to an old invite must not hit a newer one."""

    def setup(conn: Connection) -> tuple[User, User, int, str, int, int]:
        alice, bob = people(conn, "alice", "bob")
        room = room_with(conn, alice)
        key = invites.room_key(room, bob.id)
        first = invites.insert(conn, alice.id, bob.id, room, key, T0)
        invites.delete(conn, first)
        second = invites.insert(conn, alice.id, bob.id, room, key, T0)
        return alice, bob, room, key, first, second

    alice, bob, room, key, first, second = await database.write(setup)
    await database.write(invites.delete, second)
    third = await database.write(invites.insert, alice.id, bob.id, room, key, T0)
    assert len({first, second, third}) == 3


# ---- messages ------------------------------------------------------------------


async def test_message_ids_are_gap_free_per_chat(database: Database) -> None:
    def setup(conn: Connection) -> tuple[int, int]:
        alice, bob = people(conn, "alice", "bob")
        one = room_with(conn, alice, bob)
        two = room_with(conn, alice, bob)
        assert messages.next_seqs(conn, one, 3) == 1
        assert messages.next_seqs(conn, two, 1) == 1
        assert messages.next_seqs(conn, one, 2) == 4
        assert messages.next_seqs(conn, two, 1) == 2
        assert chats.positions(conn, alice.id) == {one: 5, two: 2}
        return one, two

    one, _ = await database.write(setup)

    # A rolled-back reservation leaves no gap.
    def dies(conn: Connection) -> None:
        messages.next_seqs(conn, one, 10)
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        await database.write(dies)
    assert await database.write(messages.next_seqs, one, 1) == 6


async def test_pages_newest_first_down_to_the_very_first(database: Database) -> None:
    def setup(conn: Connection) -> tuple[User, User, int, int, MessagePage]:
        alice, bob = people(conn, "alice", "bob")
        room = room_with(conn, alice, bob)
        other = room_with(conn, alice, bob)
        store(conn, other, bob, "elsewhere")
        for i in range(7):
            store(conn, room, (alice, bob)[i % 2], f"m{i + 1}", at=T0 + timedelta(i))
        empty = messages.page(conn, room_with(conn, alice), 0, 3)
        return alice, bob, room, other, empty

    alice, _, room, other, empty = await database.write(setup)
    assert empty.messages == [] and not empty.has_more

    def check(conn: Connection) -> None:
        seen: list[int] = []
        before, pages = 0, 0
        while True:
            page = messages.page(conn, room, before, 3)
            pages += 1
            seen.extend(m.id for m in page.messages)
            if not page.has_more:
                break
            before = page.messages[-1].id
        assert seen == [7, 6, 5, 4, 3, 2, 1] and pages == 3
        exact = messages.page(conn, room, 0, 7)
        assert len(exact.messages) == 7 and not exact.has_more
        assert (messages.page(conn, room, 8, 2)).messages[0].id == 7
        first = (messages.page(conn, room, 2, 5)).messages
        assert [(m.id, m.text, m.sender) for m in first] == [(1, "m1", alice)]
        assert first[0].sent_at == T0 and first[0].chat_id == room
        assert [m.id for m in messages.after(conn, room, 0, 100)] == list(range(1, 8))
        assert [m.id for m in messages.after(conn, room, 4, 2)] == [5, 6]
        assert messages.after(conn, room, 7, 10) == []
        last = messages.last_messages(conn, {room: 7, other: 1})
        assert (last[room].text, last[other].text) == ("m7", "elsewhere")
        assert messages.last_messages(conn, {}) == {}

    await database.read(check)


async def test_client_message_ids_are_unique_per_sender(database: Database) -> None:
    def setup(conn: Connection) -> tuple[User, User, int]:
        alice, bob = people(conn, "alice", "bob")
        room = room_with(conn, alice, bob)
        messages.insert_many(conn, [messages.row(room, 1, alice.id, "cid", "hi", T0)])
        # Another sender may use the same client id.
        messages.insert_many(conn, [messages.row(room, 2, bob.id, "cid", "yo", T0)])
        messages.insert_many(conn, [])
        asked = [(alice.id, "cid"), (alice.id, "other"), (bob.id, "cid"), (alice.id, "cid")]
        found = messages.by_client_ids(conn, asked)
        assert found == {
            (alice.id, "cid"): Message(room, 1, alice, "hi", T0, "cid"),
            (bob.id, "cid"): Message(room, 2, bob, "yo", T0, "cid"),
        }
        assert messages.by_client_ids(conn, []) == {}
        return alice, bob, room

    alice, bob, room = await database.write(setup)
    with pytest.raises(Conflict):
        await database.write(
            messages.insert_many, [messages.row(room, 3, alice.id, "cid", "hi", T0)]
        )
    with pytest.raises(Conflict):  # and one message per id in a chat
        await database.write(
            messages.insert_many, [messages.row(room, 2, alice.id, "new", "x", T0)]
        )

    def read_marks(conn: Connection) -> None:
        messages.mark_senders_read(conn, {(room, bob.id): 2, (room, alice.id): 1})
        messages.mark_senders_read(conn, {(room, bob.id): 1})  # never back
        messages.mark_senders_read(conn, {})
        assert {s.chat.id: s.last_read_id for s in chats.summaries(conn, bob.id)} == {room: 2}
        assert {s.chat.id: s.last_read_id for s in chats.summaries(conn, alice.id)} == {room: 1}

    await database.write(read_marks)


async def test_memberships_of_a_group(database: Database) -> None:
    def check(conn: Connection) -> None:
        alice, bob, carol = people(conn, "alice", "bob", "carol")
        room = room_with(conn, alice, bob)
        asked = [(room, alice.id), (room, carol.id), (room, bob.id), (room + 1, alice.id)]
        assert chats.memberships(conn, asked) == {(room, alice.id), (room, bob.id)}
        assert chats.memberships(conn, []) == set()

    await database.write(check)


async def test_timestamps_come_back_aware_utc(database: Database) -> None:
    tokyo = datetime(2024, 5, 1, 21, 0, 0, 123456, tzinfo=ZoneInfo("Asia/Tokyo"))

    def setup(conn: Connection) -> tuple[User, Chat, int]:
        alice = users.insert(conn, "alice", "Alice", "x", tokyo)
        room = chats.create(conn, ChatKind.ROOM, "r", alice.id, tokyo)
        chats.add_member(conn, room.id, alice.id, tokyo)
        store(conn, room.id, alice, "hi", at=tokyo)
        session = sessions.create(conn, alice.id, "h", tokyo, tokyo + timedelta(days=1))
        return alice, room, session

    alice, room, session = await database.write(setup)
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await database.write(users.insert, "bob", "Bob", "x", datetime(2024, 1, 1))

    def read_stamps(conn: Connection) -> list[Any]:
        stamps = [
            (chats.get(conn, room.id)).created_at,  # type: ignore[union-attr]
            (messages.page(conn, room.id, 0, 1)).messages[0].sent_at,
            conn.scalar(sa.select(tables.users.c.created_at)),
            conn.scalar(sa.select(tables.sessions.c.expires_at)),
        ]
        assert sessions.is_active(conn, session, alice.id, tokyo)
        return stamps

    stamps = await database.read(read_stamps)
    for stamp in stamps[:3]:
        assert stamp == tokyo
        assert stamp.tzinfo is UTC and stamp.utcoffset() == timedelta(0)
        assert (stamp.hour, stamp.microsecond) == (12, 123456)
    assert stamps[3].tzinfo is UTC and stamps[3] == tokyo + timedelta(days=1)


# ---- concurrency ---------------------------------------------------------------


async def test_concurrent_writers_in_one_chat_keep_ids_gap_free(database: Database) -> None:
    """Each transaction reserves ids and inserts its rows, all at once: the
    row lock taken by UPDATE ... RETURNING on the chat serialises them."""

    def setup(conn: Connection) -> tuple[User, int]:
        alice = add_user(conn, "alice")
        return alice, room_with(conn, alice)

    alice, room = await database.write(setup)
    counts = [1 + i % 3 for i in range(16)]

    def write(conn: Connection, n: int) -> list[int]:
        first = messages.next_seqs(conn, room, n)
        time.sleep(0.005)  # hold the lock while others queue up
        rows = [
            messages.row(room, first + k, alice.id, f"w{next(_cids)}", "x", T0) for k in range(n)
        ]
        messages.insert_many(conn, rows)
        return [first + k for k in range(n)]

    async def writer(n: int) -> list[int]:
        return await database.write(write, n)

    reserved = await asyncio.gather(*(writer(n) for n in counts))
    flat = [seq for seqs in reserved for seq in seqs]
    total = sum(counts)
    assert sorted(flat) == list(range(1, total + 1))
    assert await all_seqs(database, room) == list(range(1, total + 1))
    assert await database.read(chats.positions, alice.id) == {room: total}


async def test_workers_storing_in_several_chats_at_once_do_not_deadlock(
    database: Database,
) -> None:
    """Batches that touch the same chats in opposite orders, on competing
    workers: they lock the chats in one order, so neither waits on the other."""

    def setup(conn: Connection) -> tuple[User, User, list[int]]:
        alice, bob = people(conn, "alice", "bob")
        return alice, bob, [room_with(conn, alice, bob, name=f"r{i}") for i in range(3)]

    alice, bob, rooms = await database.write(setup)
    broker = MemoryBroker()
    await broker.start()
    workers = [Worker(database, broker) for _ in range(4)]

    def batch(order: list[int], who: User) -> list[cmd.Command]:
        return [cmd.SendMessage(who.id, chat, f"d{next(_cids)}", "hi") for chat in order]

    rounds = 6
    for r in range(rounds):
        orders = [rooms, rooms[::-1], rooms[1:] + rooms[:1], rooms[::-1]]
        outcomes = await asyncio.gather(
            *(
                w.handle(batch(order, (alice, bob)[(r + i) % 2]))
                for i, (w, order) in enumerate(zip(workers, orders, strict=True))
            )
        )
        assert all(o.error is None for batch_outcomes in outcomes for o in batch_outcomes)
    await broker.close()
    for room in rooms:
        assert await all_seqs(database, room) == list(range(1, rounds * len(workers) + 1))


async def test_competing_workers_answer_a_duplicate_invite_already_exists(
    database: Database,
) -> None:
    """Two workers handling the same invite at once: one stores it, the
    other is told it exists (not an internal error from the unique key)."""

    def setup(conn: Connection) -> tuple[User, User, int]:
        alice, bob = people(conn, "alice", "bob")
        return alice, bob, room_with(conn, alice)

    alice, bob, room = await database.write(setup)
    broker = MemoryBroker()
    await broker.start()
    workers = [Worker(database, broker) for _ in range(6)]
    invite = cmd.InviteToRoom(alice.id, room, bob.id)
    outcomes = await asyncio.gather(*(w.handle([invite]) for w in workers))
    await broker.close()
    results = [o for (o,) in outcomes]
    assert sum(o.error is None for o in results) == 1
    assert all(isinstance(o.error, AlreadyExists) for o in results if o.error is not None)
    assert len(await database.read(invites.received, bob.id)) == 1
