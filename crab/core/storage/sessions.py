"""Sign-in sessions. An access token names its session, so revoking the
session ends the token on its next call, not at its expiry."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.admin import SignInSession, sign_in_refusal
from crab.core.storage.fast_statements import FastStatement
from crab.core.storage.tables import sessions, users


def create(
    conn: Connection, user_id: int, refresh_hash: str, now: datetime, expires_at: datetime
) -> int:
    result = conn.execute(
        sa.insert(sessions).values(
            user_id=user_id, refresh_hash=refresh_hash, created_at=now, expires_at=expires_at
        )
    )
    (session_id,) = result.inserted_primary_key or (0,)
    return int(session_id)


# Built once: asked on every call, and building a statement costs about as
# much as running it (the hot statements here and in messages/chats/users).
_IS_ACTIVE = FastStatement(
    sa.select(sessions.c.id).where(
        sessions.c.id == sa.bindparam("session_id"),
        sessions.c.user_id == sa.bindparam("user_id"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > sa.bindparam("now", type_=sessions.c.expires_at.type),
    )
)


def is_active(conn: Connection, session_id: int, user_id: int, now: datetime) -> bool:
    params = {"session_id": session_id, "user_id": user_id, "now": now}
    return bool(_IS_ACTIVE.all(conn, params))


def rotate(
    conn: Connection, old_hash: str, new_hash: str, now: datetime, expires_at: datetime
) -> tuple[int, int] | None:
    """(session id, user id) if this refresh token was the session's current
    one and is now replaced. One compare-and-swap: of two rotations with
    one token exactly one changes the row (on PostgreSQL the second waits
    for the first's row lock, then finds the hash changed)."""
    swapped = conn.execute(
        sa.update(sessions)
        .where(
            sessions.c.refresh_hash == old_hash,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        .values(refresh_hash=new_hash, previous_refresh_hash=old_hash, expires_at=expires_at)
    )
    if swapped.rowcount != 1:
        return None
    row = (
        conn.execute(
            sa.select(sessions.c.id, sessions.c.user_id).where(sessions.c.refresh_hash == new_hash)
        )
    ).one()
    return int(row.id), int(row.user_id)


def by_previous_refresh_hash(
    conn: Connection, old_hash: str, now: datetime
) -> tuple[int, int] | None:
    """(session id, user id) of an active session whose refresh token was
    this one until its last rotation: someone presents a spent token."""
    row = (
        conn.execute(
            sa.select(sessions.c.id, sessions.c.user_id).where(
                sessions.c.previous_refresh_hash == old_hash,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
            )
        )
    ).first()
    return (int(row.id), int(row.user_id)) if row else None


def revoke(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(
        sa.update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(
        sa.update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all_but(conn: Connection, user_id: int, keep_id: int, now: datetime) -> None:
    """Every session of the user but one (a password change keeps its own)."""
    conn.execute(
        sa.update(sessions)
        .where(
            sessions.c.user_id == user_id,
            sessions.c.id != keep_id,
            sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


def revoke_of_user(conn: Connection, session_id: int, user_id: int, now: datetime) -> bool:
    """An admin's revoke: True if it was this user's session and active."""
    done = conn.execute(
        sa.update(sessions)
        .where(
            sessions.c.id == session_id,
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return bool(done.rowcount == 1)


def of_user(conn: Connection, user_id: int) -> list[SignInSession]:
    """Every session the user ever opened, newest first."""
    rows = conn.execute(
        sa.select(
            sessions.c.id, sessions.c.created_at, sessions.c.expires_at, sessions.c.revoked_at
        )
        .where(sessions.c.user_id == user_id)
        .order_by(sessions.c.id.desc())
    )
    return [SignInSession(r.id, r.created_at, r.expires_at, r.revoked_at) for r in rows]


def active_among(conn: Connection, session_ids: list[int], now: datetime) -> set[int]:
    """Which of these sessions are still signed in: a server's periodic
    check of its open streams (a revoke by `crab user` reaches no broker)."""
    if not session_ids:
        return set()
    query = sa.select(sessions.c.id).where(
        sessions.c.id.in_(session_ids),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > now,
    )
    return {int(found) for found in conn.execute(query).scalars()}


def refresh_refusal(conn: Connection, refresh_hash: str) -> str | None:
    """Why this refresh token's account may not sign in (disabled or
    deleted by an admin), or None: a refused refresh then says why."""
    query = (
        sa.select(users.c.disabled_at, users.c.deleted_at)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(sessions.c.refresh_hash == refresh_hash)
    )
    row = conn.execute(query).first()
    return None if row is None else sign_in_refusal(row.disabled_at, row.deleted_at)
