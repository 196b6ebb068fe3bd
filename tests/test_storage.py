"""Storage details that the API cannot show directly."""

from __future__ import annotations

from pathlib import Path

from crab.core.clock import now
from crab.core.domain.models import ChatKind
from crab.core.storage import chats, invites, users
from crab.core.storage.engine import create_engine, migrate


async def test_an_answered_invites_id_is_never_reused(tmp_path: Path) -> None:
    """A retried answer to an old invite must not hit a newer one."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    await migrate(engine)
    async with engine.begin() as conn:
        alice = await users.insert(conn, "alice", "Alice", "x", now())
        bob = await users.insert(conn, "bob", "Bob", "x", now())
        room = await chats.create(conn, ChatKind.ROOM, "r", alice.id, now())
        key = invites.room_key(room.id, bob.id)
        first = await invites.insert(conn, alice.id, bob.id, room.id, key, now())
        await invites.delete(conn, first)
        second = await invites.insert(conn, alice.id, bob.id, room.id, key, now())
    await engine.dispose()
    assert second != first
