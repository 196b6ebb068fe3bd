"""The storage contract: every query module, the migrations and the worker's
write path, run once on SQLite and once on a real PostgreSQL (started for the
session by tests/helpers/services.py; each test gets a fresh database)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crab.core.broker.memory import MemoryBroker
from crab.core.domain import commands as cmd
from crab.core.domain.models import ChatKind, Message, User
from crab.core.storage import chats, invites, messages, sessions, tables, users
from crab.core.storage.engine import SCHEMA_HEAD, create_engine, dispose, migrate, transaction
from crab.core.storage.tables import metadata
from crab.core.worker.handlers import Worker
from crab.errors import AlreadyExists

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_cids = itertools.count(1)


async def add_user(conn: AsyncConnection, name: str, display: str | None = None) -> User:
    return await users.insert(conn, name, display or name.title(), "hash", T0)


async def room_with(conn: AsyncConnection, *people: User, name: str = "room") -> int:
    chat = await chats.create(conn, ChatKind.ROOM, name, people[0].id, T0)
    for person in people:
        await chats.add_member(conn, chat.id, person.id, T0)
    return chat.id


async def store(
    conn: AsyncConnection, chat_id: int, sender: User, *texts: str, at: datetime = T0
) -> list[int]:
    """What the worker does: reserve ids, then insert the rows at once."""
    first = await conn.run_sync(messages.next_seqs, chat_id, len(texts))
    seqs = list(range(first, first + len(texts)))
    rows = [
        messages.row(chat_id, seq, sender.id, f"c{next(_cids)}", text, at)
        for seq, text in zip(seqs, texts, strict=True)
    ]
    await conn.run_sync(messages.insert_many, rows)
    return seqs


async def all_seqs(engine: AsyncEngine, chat_id: int) -> list[int]:
    async with engine.connect() as conn:
        page = await conn.run_sync(messages.page, chat_id, 0, 10_000)
    return sorted(m.id for m in page.messages)


# ---- schema --------------------------------------------------------------------


async def test_migrations_create_exactly_the_schema_and_are_idempotent(
    engine: AsyncEngine,
) -> None:
    await migrate(engine)  # every start runs it: the second time is a no-op

    def diff(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    assert version == SCHEMA_HEAD


MIGRATE = "import asyncio, sys; from crab.core.storage.engine import create_engine, migrate; "
MIGRATE += "asyncio.run(migrate(create_engine(sys.argv[1])))"


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
    engine = create_engine(pg_database_url)
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD
    await dispose(engine)


# ---- users ---------------------------------------------------------------------


async def test_users_insert_read_and_unique_names(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice = await add_user(conn, "alice", "Alice A.")
        bob = await add_user(conn, "bob")
    assert alice.id != bob.id and alice.id > 0
    async with engine.connect() as conn:
        assert await users.by_id(conn, alice.id) == alice
        assert await users.by_id(conn, 10**12) is None
        assert await conn.run_sync(users.by_ids, [alice.id, bob.id, alice.id, 10**12]) == {
            alice.id: alice,
            bob.id: bob,
        }
        assert await conn.run_sync(users.by_ids, []) == {}
        assert await users.credentials(conn, "alice") == (alice, "hash")
        assert await users.credentials(conn, "carol") is None
        assert await users.exists(conn, "bob") and not await users.exists(conn, "carol")
        assert [u.username for u in await users.list_all(conn)] == ["alice", "bob"]
    # Names are stored lower-cased (the service does it), so the unique
    # constraint on the column is unique ignoring case.
    with pytest.raises(IntegrityError):
        async with transaction(engine) as conn:
            await add_user(conn, "alice", "Another Alice")
    async with engine.connect() as conn:
        assert len(await users.list_all(conn)) == 2


async def test_user_search_ranks_escapes_wildcards_and_limits(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
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
            await add_user(conn, name, display)
    async with engine.connect() as conn:

        async def find(query: str, limit: int = 20) -> list[str]:
            return [u.username for u in await users.search(conn, query, limit)]

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


async def test_sessions_create_check_rotate_and_revoke(engine: AsyncEngine) -> None:
    later = T0 + timedelta(days=30)
    async with transaction(engine) as conn:
        alice = await add_user(conn, "alice")
        bob = await add_user(conn, "bob")
        one = await sessions.create(conn, alice.id, "h1", T0, later)
        two = await sessions.create(conn, alice.id, "h2", T0, later)
        bobs = await sessions.create(conn, bob.id, "h3", T0, later)
    assert len({one, two, bobs}) == 3
    async with transaction(engine) as conn:
        assert await conn.run_sync(sessions.is_active, one, alice.id, T0)
        assert not await conn.run_sync(sessions.is_active, one, bob.id, T0)  # not bob's
        assert not await conn.run_sync(sessions.is_active, one, alice.id, later)  # expired
        # Refresh rotation, a compare-and-swap: the old token stops working
        # (it is remembered as spent), the new one works longer.
        assert await sessions.rotate(conn, "h1", "hx", later, later) is None  # expired
        assert await sessions.rotate(conn, "nope", "hx", T0, later) is None
        assert await sessions.by_previous_refresh_hash(conn, "h1", T0) is None
        longer = later + timedelta(days=1)
        assert await sessions.rotate(conn, "h1", "h1b", T0, longer) == (one, alice.id)
        assert await sessions.rotate(conn, "h1", "h1c", T0, longer) is None
        assert await sessions.by_previous_refresh_hash(conn, "h1", T0) == (one, alice.id)
        assert await conn.run_sync(sessions.is_active, one, alice.id, later)
    with pytest.raises(IntegrityError):  # refresh hashes are unique
        async with transaction(engine) as conn:
            await sessions.create(conn, bob.id, "h2", T0, later)
    async with transaction(engine) as conn:
        await sessions.revoke(conn, one, T0 + timedelta(hours=1))
        assert not await conn.run_sync(sessions.is_active, one, alice.id, T0)
        assert await sessions.rotate(conn, "h1b", "h1d", T0, longer) is None
        assert await sessions.by_previous_refresh_hash(conn, "h1", T0) is None
        assert await conn.run_sync(sessions.is_active, two, alice.id, T0)
        await sessions.revoke_all(conn, alice.id, T0 + timedelta(hours=2))
        assert not await conn.run_sync(sessions.is_active, two, alice.id, T0)
        assert await conn.run_sync(sessions.is_active, bobs, bob.id, T0)  # only alice's
        # Revoking again keeps the first revocation time.
        await sessions.revoke(conn, one, T0 + timedelta(hours=3))
        revoked = await conn.scalar(
            sa.select(tables.sessions.c.revoked_at).where(tables.sessions.c.id == one)
        )
    assert revoked == T0 + timedelta(hours=1)


# ---- chats ---------------------------------------------------------------------


async def test_rooms_members_and_positions(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob, carol = [await add_user(conn, n) for n in ("alice", "bob", "carol")]
        room = await chats.create(conn, ChatKind.ROOM, "team", alice.id, T0)
        await chats.add_member(conn, room.id, alice.id, T0)
        await chats.add_member(conn, room.id, bob.id, T0)
    assert room.kind == ChatKind.ROOM and room.last_message_id == 0
    async with transaction(engine) as conn:
        assert await chats.get(conn, room.id) == room
        assert await chats.get(conn, 10**12) is None
        assert await chats.is_member(conn, room.id, bob.id)
        assert not await chats.is_member(conn, room.id, carol.id)
        assert sorted(await chats.member_ids(conn, room.id)) == [alice.id, bob.id]
        assert await chats.member_users(conn, room.id) == [alice, bob]
        await store(conn, room.id, alice, "one", "two", "three")
        # A newcomer joins at the end: older history counts as read.
        await chats.add_member(conn, room.id, carol.id, T0)
        assert await chats.positions(conn, carol.id) == {room.id: 3}
        (summary,) = await chats.summaries(conn, carol.id)
        assert summary.unread_count == 0 and summary.last_read_id == 3
    with pytest.raises(IntegrityError):  # one membership per person
        async with transaction(engine) as conn:
            await chats.add_member(conn, room.id, carol.id, T0)
    async with transaction(engine) as conn:
        assert await chats.remove_member(conn, room.id, bob.id)
        assert not await chats.remove_member(conn, room.id, bob.id)
        assert await chats.positions(conn, bob.id) == {}
        assert (await chats.get(conn, room.id)) == dataclasses.replace(room, last_message_id=3)


async def test_one_direct_chat_per_pair_named_for_the_other(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob, carol = [await add_user(conn, n) for n in ("alice", "bob", "carol")]
        key = chats.direct_key(bob.id, alice.id)
        assert key == chats.direct_key(alice.id, bob.id)
        direct = await chats.create(conn, ChatKind.DIRECT, "", alice.id, T0, key)
        for person in (alice, bob):
            await chats.add_member(conn, direct.id, person.id, T0)
    with pytest.raises(IntegrityError):
        async with transaction(engine) as conn:
            await chats.create(conn, ChatKind.DIRECT, "", bob.id, T0, key)
    async with transaction(engine) as conn:
        assert (await chats.direct_between(conn, bob.id, alice.id)) == direct
        assert await chats.direct_between(conn, alice.id, carol.id) is None
        assert (await chats.view(conn, direct, alice.id)).name == "bob"
        assert (await chats.view(conn, direct, bob.id)).name == "alice"
        # Rooms have no key: any number of them.
        await chats.create(conn, ChatKind.ROOM, "r", alice.id, T0)
        await chats.create(conn, ChatKind.ROOM, "r", alice.id, T0)
        (summary,) = await chats.summaries(conn, bob.id)
        assert summary.chat.name == "alice"


async def test_summaries_unread_last_message_and_order(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        quiet = await room_with(conn, alice, bob, name="quiet")
        busy = await room_with(conn, alice, bob, name="busy")
        old = await room_with(conn, alice, bob, name="old")
        await store(conn, old, alice, "long ago", at=T0 + timedelta(minutes=1))
        await store(conn, busy, bob, "a", "b", "c", at=T0 + timedelta(minutes=2))
    async with engine.connect() as conn:
        got = await chats.summaries(conn, alice.id)
    assert [s.chat.name for s in got] == ["busy", "old", "quiet"]
    by_name = {s.chat.name: s for s in got}
    assert [by_name[n].unread_count for n in ("busy", "old", "quiet")] == [3, 1, 0]
    last = by_name["busy"].last_message
    assert last is not None and (last.id, last.text, last.sender) == (3, "c", bob)
    assert last.sent_at == T0 + timedelta(minutes=2)
    assert by_name["quiet"].last_message is None
    assert by_name["busy"].chat.id == busy and by_name["quiet"].chat.id == quiet


async def test_mark_read_moves_forward_only_and_never_past_the_end(
    engine: AsyncEngine,
) -> None:
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        room = await room_with(conn, alice, bob)
        await store(conn, room, bob, *[f"m{i}" for i in range(5)])

    async def read_position() -> tuple[int, int]:
        async with engine.connect() as conn:
            (s,) = await chats.summaries(conn, alice.id)
        return s.last_read_id, s.unread_count

    async def mark(seq: int) -> None:
        async with transaction(engine) as conn:
            await chats.mark_read(conn, room, alice.id, seq)

    assert await read_position() == (0, 5)
    await mark(3)
    assert await read_position() == (3, 2)
    await mark(1)  # never back
    assert await read_position() == (3, 2)
    await mark(99)  # never past the end
    assert await read_position() == (5, 0)
    async with transaction(engine) as conn:
        await store(conn, room, bob, "m5")
    # Ids a client may send (uint64 on the wire; int64 in the database).
    for huge in (2**31, 2**40, 2**63 - 1):
        await mark(huge)
        assert await read_position() == (6, 0)


# ---- invites -------------------------------------------------------------------


async def test_invites_pending_keys_lists_and_delete(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob, carol = [await add_user(conn, n) for n in ("alice", "bob", "carol")]
        room = await room_with(conn, alice, name="team")
        to_room = await invites.insert(
            conn, alice.id, bob.id, room, invites.room_key(room, bob.id), T0
        )
        direct_key = invites.direct_key(carol.id, alice.id)
        assert direct_key == invites.direct_key(alice.id, carol.id)
        to_direct = await invites.insert(conn, carol.id, alice.id, None, direct_key, T0)
    for key in (invites.room_key(room, bob.id), invites.direct_key(alice.id, carol.id)):
        with pytest.raises(IntegrityError):  # one pending invite per room+person / pair
            async with transaction(engine) as conn:
                await invites.insert(conn, alice.id, carol.id, None, key, T0)
    async with transaction(engine) as conn:
        assert await invites.key_taken(conn, invites.room_key(room, bob.id))
        assert not await invites.key_taken(conn, invites.room_key(room, carol.id))
        got = await invites.get(conn, to_room)
        assert got is not None and got.chat is not None
        assert (got.inviter, got.invitee, got.chat.id, got.chat.name) == (alice, bob, room, "team")
        assert got.created_at == T0
        direct = await invites.get(conn, to_direct)
        assert direct is not None and direct.chat is None and direct.invitee == alice
        assert [i.id for i in await invites.received(conn, alice.id)] == [to_direct]
        assert [i.id for i in await invites.sent(conn, alice.id)] == [to_room]
        assert await invites.received(conn, carol.id) == []
        await invites.delete(conn, to_direct)
        assert await invites.get(conn, to_direct) is None
        await invites.delete_for_room(conn, room, bob.id)
        assert await invites.get(conn, to_room) is None
        assert await invites.sent(conn, alice.id) == []


async def test_an_answered_invites_id_is_never_reused(engine: AsyncEngine) -> None:
    """A retried answer to an old invite must not hit a newer one."""
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        room = await room_with(conn, alice)
        key = invites.room_key(room, bob.id)
        first = await invites.insert(conn, alice.id, bob.id, room, key, T0)
        await invites.delete(conn, first)
        second = await invites.insert(conn, alice.id, bob.id, room, key, T0)
    async with transaction(engine) as conn:
        await invites.delete(conn, second)
    async with transaction(engine) as conn:
        third = await invites.insert(conn, alice.id, bob.id, room, key, T0)
    assert len({first, second, third}) == 3


# ---- messages ------------------------------------------------------------------


async def test_message_ids_are_gap_free_per_chat(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        one = await room_with(conn, alice, bob)
        two = await room_with(conn, alice, bob)
        assert await conn.run_sync(messages.next_seqs, one, 3) == 1
        assert await conn.run_sync(messages.next_seqs, two, 1) == 1
        assert await conn.run_sync(messages.next_seqs, one, 2) == 4
        assert await conn.run_sync(messages.next_seqs, two, 1) == 2
        assert await chats.positions(conn, alice.id) == {one: 5, two: 2}
    # A rolled-back reservation leaves no gap.
    with pytest.raises(RuntimeError):
        async with transaction(engine) as conn:
            await conn.run_sync(messages.next_seqs, one, 10)
            raise RuntimeError("worker died")
    async with transaction(engine) as conn:
        assert await conn.run_sync(messages.next_seqs, one, 1) == 6


async def test_pages_newest_first_down_to_the_very_first(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        room = await room_with(conn, alice, bob)
        other = await room_with(conn, alice, bob)
        await store(conn, other, bob, "elsewhere")
        for i in range(7):
            await store(conn, room, (alice, bob)[i % 2], f"m{i + 1}", at=T0 + timedelta(i))
        empty = await conn.run_sync(messages.page, await room_with(conn, alice), 0, 3)
    assert empty.messages == [] and not empty.has_more
    seen: list[int] = []
    before, pages = 0, 0
    async with engine.connect() as conn:
        while True:
            page = await conn.run_sync(messages.page, room, before, 3)
            pages += 1
            seen.extend(m.id for m in page.messages)
            if not page.has_more:
                break
            before = page.messages[-1].id
        assert seen == [7, 6, 5, 4, 3, 2, 1] and pages == 3
        exact = await conn.run_sync(messages.page, room, 0, 7)
        assert len(exact.messages) == 7 and not exact.has_more
        assert (await conn.run_sync(messages.page, room, 8, 2)).messages[0].id == 7
        first = (await conn.run_sync(messages.page, room, 2, 5)).messages
        assert [(m.id, m.text, m.sender) for m in first] == [(1, "m1", alice)]
        assert first[0].sent_at == T0 and first[0].chat_id == room
        assert [m.id for m in await conn.run_sync(messages.after, room, 0, 100)] == list(
            range(1, 8)
        )
        assert [m.id for m in await conn.run_sync(messages.after, room, 4, 2)] == [5, 6]
        assert await conn.run_sync(messages.after, room, 7, 10) == []
        last = await messages.last_messages(conn, {room: 7, other: 1})
        assert (last[room].text, last[other].text) == ("m7", "elsewhere")
        assert await messages.last_messages(conn, {}) == {}


async def test_client_message_ids_are_unique_per_sender(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        room = await room_with(conn, alice, bob)
        await conn.run_sync(
            messages.insert_many, [messages.row(room, 1, alice.id, "cid", "hi", T0)]
        )
        # Another sender may use the same client id.
        await conn.run_sync(messages.insert_many, [messages.row(room, 2, bob.id, "cid", "yo", T0)])
        await conn.run_sync(messages.insert_many, [])
        asked = [(alice.id, "cid"), (alice.id, "other"), (bob.id, "cid"), (alice.id, "cid")]
        found = await conn.run_sync(messages.by_client_ids, asked)
        assert found == {
            (alice.id, "cid"): Message(room, 1, alice, "hi", T0, "cid"),
            (bob.id, "cid"): Message(room, 2, bob, "yo", T0, "cid"),
        }
        assert await conn.run_sync(messages.by_client_ids, []) == {}
    with pytest.raises(IntegrityError):
        async with transaction(engine) as conn:
            await conn.run_sync(
                messages.insert_many, [messages.row(room, 3, alice.id, "cid", "hi", T0)]
            )
    with pytest.raises(IntegrityError):  # and one message per id in a chat
        async with transaction(engine) as conn:
            await conn.run_sync(
                messages.insert_many, [messages.row(room, 2, alice.id, "new", "x", T0)]
            )
    async with transaction(engine) as conn:
        await conn.run_sync(messages.mark_senders_read, {(room, bob.id): 2, (room, alice.id): 1})
        await conn.run_sync(messages.mark_senders_read, {(room, bob.id): 1})  # never back
        await conn.run_sync(messages.mark_senders_read, {})
        assert {s.chat.id: s.last_read_id for s in await chats.summaries(conn, bob.id)} == {room: 2}
        assert {s.chat.id: s.last_read_id for s in await chats.summaries(conn, alice.id)} == {
            room: 1
        }


async def test_memberships_of_a_group(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        alice, bob, carol = [await add_user(conn, n) for n in ("alice", "bob", "carol")]
        room = await room_with(conn, alice, bob)
        asked = [(room, alice.id), (room, carol.id), (room, bob.id), (room + 1, alice.id)]
        assert await conn.run_sync(chats.memberships, asked) == {(room, alice.id), (room, bob.id)}
        assert await conn.run_sync(chats.memberships, []) == set()


async def test_timestamps_come_back_aware_utc(engine: AsyncEngine) -> None:
    tokyo = datetime(2024, 5, 1, 21, 0, 0, 123456, tzinfo=ZoneInfo("Asia/Tokyo"))
    async with transaction(engine) as conn:
        alice = await users.insert(conn, "alice", "Alice", "x", tokyo)
        room = await chats.create(conn, ChatKind.ROOM, "r", alice.id, tokyo)
        await chats.add_member(conn, room.id, alice.id, tokyo)
        await store(conn, room.id, alice, "hi", at=tokyo)
        session = await sessions.create(conn, alice.id, "h", tokyo, tokyo + timedelta(days=1))
    with pytest.raises(sa.exc.StatementError, match="naive"):
        async with transaction(engine) as conn:
            await users.insert(conn, "bob", "Bob", "x", datetime(2024, 1, 1))
    async with engine.connect() as conn:
        stamps = [
            (await chats.get(conn, room.id)).created_at,  # type: ignore[union-attr]
            (await conn.run_sync(messages.page, room.id, 0, 1)).messages[0].sent_at,
            await conn.scalar(sa.select(tables.users.c.created_at)),
            await conn.scalar(sa.select(tables.sessions.c.expires_at)),
        ]
        assert await conn.run_sync(sessions.is_active, session, alice.id, tokyo)
    for stamp in stamps[:3]:
        assert stamp == tokyo
        assert stamp.tzinfo is UTC and stamp.utcoffset() == timedelta(0)
        assert (stamp.hour, stamp.microsecond) == (12, 123456)
    assert stamps[3].tzinfo is UTC and stamps[3] == tokyo + timedelta(days=1)


# ---- concurrency ---------------------------------------------------------------


async def test_concurrent_writers_in_one_chat_keep_ids_gap_free(engine: AsyncEngine) -> None:
    """Each transaction reserves ids and inserts its rows, all at once: the
    row lock taken by UPDATE ... RETURNING on the chat serialises them."""
    async with transaction(engine) as conn:
        alice = await add_user(conn, "alice")
        room = await room_with(conn, alice)
    counts = [1 + i % 3 for i in range(16)]

    async def writer(n: int) -> list[int]:
        async with transaction(engine) as conn:
            first = await conn.run_sync(messages.next_seqs, room, n)
            await asyncio.sleep(0.005)  # hold the lock while others queue up
            rows = [
                messages.row(room, first + k, alice.id, f"w{next(_cids)}", "x", T0)
                for k in range(n)
            ]
            await conn.run_sync(messages.insert_many, rows)
            return [first + k for k in range(n)]

    reserved = await asyncio.gather(*(writer(n) for n in counts))
    flat = [seq for seqs in reserved for seq in seqs]
    total = sum(counts)
    assert sorted(flat) == list(range(1, total + 1))
    assert await all_seqs(engine, room) == list(range(1, total + 1))
    async with engine.connect() as conn:
        assert await chats.positions(conn, alice.id) == {room: total}


async def test_workers_storing_in_several_chats_at_once_do_not_deadlock(
    engine: AsyncEngine,
) -> None:
    """Batches that touch the same chats in opposite orders, on competing
    workers: they lock the chats in one order, so neither waits on the other."""
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        rooms = [await room_with(conn, alice, bob, name=f"r{i}") for i in range(3)]
    broker = MemoryBroker()
    await broker.start()
    workers = [Worker(engine, broker) for _ in range(4)]

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
        assert await all_seqs(engine, room) == list(range(1, rounds * len(workers) + 1))


async def test_competing_workers_answer_a_duplicate_invite_already_exists(
    engine: AsyncEngine,
) -> None:
    """Two workers handling the same invite at once: one stores it, the
    other is told it exists (not an internal error from the unique key)."""
    async with transaction(engine) as conn:
        alice, bob = [await add_user(conn, n) for n in ("alice", "bob")]
        room = await room_with(conn, alice)
    broker = MemoryBroker()
    await broker.start()
    workers = [Worker(engine, broker) for _ in range(6)]
    invite = cmd.InviteToRoom(alice.id, room, bob.id)
    outcomes = await asyncio.gather(*(w.handle([invite]) for w in workers))
    await broker.close()
    results = [o for (o,) in outcomes]
    assert sum(o.error is None for o in results) == 1
    assert all(isinstance(o.error, AlreadyExists) for o in results if o.error is not None)
    async with engine.connect() as conn:
        assert len(await invites.received(conn, bob.id)) == 1
