"""Users: accounts and the people you can find."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain import admin
from crab.core.domain.admin import (
    ACCOUNT_DELETED,
    DELETED_DISPLAY_NAME,
    DELETED_NAME_PREFIX,
    DELETED_PASSWORD,
    Account,
)
from crab.core.domain.models import User
from crab.core.storage.fast_statements import FastStatement
from crab.core.storage.tables import users

USER_COLUMNS = (users.c.id, users.c.username, users.c.display_name)


def to_user(row: Any) -> User:
    return User(id=row.id, username=row.username, display_name=row.display_name)


def insert(
    conn: Connection, username: str, display_name: str, password_hash: str, now: datetime
) -> User:
    result = conn.execute(
        sa.insert(users).values(
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            created_at=now,
        )
    )
    (user_id,) = result.inserted_primary_key or (0,)
    return User(id=int(user_id), username=username, display_name=display_name)


def set_display_name(conn: Connection, user_id: int, display_name: str) -> User | None:
    """The user as they are now, or None if there is no such user."""
    conn.execute(sa.update(users).where(users.c.id == user_id).values(display_name=display_name))
    return by_id(conn, user_id)


def password_hash(conn: Connection, user_id: int) -> str | None:
    query = sa.select(users.c.password_hash).where(users.c.id == user_id)
    found: str | None = conn.execute(query).scalar()
    return found


def set_password_hash(conn: Connection, user_id: int, new_hash: str) -> None:
    conn.execute(sa.update(users).where(users.c.id == user_id).values(password_hash=new_hash))


def by_id(conn: Connection, user_id: int) -> User | None:
    row = (conn.execute(_BY_ID, {"user_id": user_id})).first()
    return to_user(row) if row else None


_BY_ID = sa.select(*USER_COLUMNS).where(users.c.id == sa.bindparam("user_id"))


def by_ids(conn: Connection, user_ids: Iterable[int]) -> dict[int, User]:
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = _BY_IDS.all(conn, {"ids": ids})
    return {user_id: User(user_id, name, display) for user_id, name, display in rows}


_BY_IDS = FastStatement(
    sa.select(*USER_COLUMNS).where(users.c.id.in_(sa.bindparam("ids", expanding=True))),
    expanding=("ids",),
)


def last_seen(conn: Connection, user_ids: Iterable[int]) -> dict[int, datetime]:
    """user id -> when last online (users never seen are left out)."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(users.c.id, users.c.last_seen_at).where(
            users.c.id.in_(ids), users.c.last_seen_at.is_not(None)
        )
    )
    return {row.id: row.last_seen_at for row in rows}


def set_last_seen(conn: Connection, user_ids: Iterable[int], when: datetime) -> None:
    ids = list(set(user_ids))
    if ids:
        conn.execute(sa.update(users).where(users.c.id.in_(ids)).values(last_seen_at=when))


def credentials(conn: Connection, username: str) -> tuple[User, str] | None:
    """The user and their password hash, for sign-in."""
    row = (
        conn.execute(
            sa.select(*USER_COLUMNS, users.c.password_hash).where(users.c.username == username)
        )
    ).first()
    return (to_user(row), row.password_hash) if row else None


def exists(conn: Connection, username: str) -> bool:
    query = sa.select(users.c.id).where(users.c.username == username)
    return (conn.execute(query)).first() is not None


def list_all(conn: Connection) -> list[User]:
    rows = conn.execute(sa.select(*USER_COLUMNS).order_by(users.c.username))
    return [to_user(row) for row in rows]


# ---- an admin's view and acts (`crab user ...`) --------------------------------

_ACCOUNT_COLUMNS = (
    *USER_COLUMNS,
    users.c.created_at,
    users.c.disabled_at,
    users.c.deleted_at,
    users.c.password_hash,
)


def _to_account(row: Any) -> Account:
    return Account(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        deleted_at=row.deleted_at,
        has_password=not row.password_hash.startswith("!"),
    )


def account(conn: Connection, username: str) -> Account | None:
    """The account of that name (a deleted one no longer has it)."""
    query = sa.select(*_ACCOUNT_COLUMNS).where(users.c.username == username)
    row = conn.execute(query).first()
    return _to_account(row) if row else None


def accounts(conn: Connection, with_deleted: bool = False) -> list[Account]:
    query = sa.select(*_ACCOUNT_COLUMNS).order_by(users.c.username)
    if not with_deleted:
        query = query.where(users.c.deleted_at.is_(None))
    return [_to_account(row) for row in conn.execute(query)]


def set_disabled(conn: Connection, user_id: int, when: datetime | None) -> None:
    """`when` None enables the account again. The row is written first, so
    a sign-in racing this waits for it (see `sign_in_refusal`)."""
    conn.execute(sa.update(users).where(users.c.id == user_id).values(disabled_at=when))


def sign_in_refusal(conn: Connection, user_id: int) -> str | None:
    """Why this account may not open a session now, or None. Locks the row
    (PostgreSQL) until commit: a disable committing meanwhile either comes
    first (seen here) or waits and then revokes the session made here."""
    query = (
        sa.select(users.c.disabled_at, users.c.deleted_at)
        .where(users.c.id == user_id)
        .with_for_update()
    )
    row = conn.execute(query).first()
    if row is None:
        return ACCOUNT_DELETED
    return admin.sign_in_refusal(row.disabled_at, row.deleted_at)


def mark_deleted(conn: Connection, user_id: int, when: datetime) -> None:
    """The row stays (messages, rooms and reactions point at it) with its
    name freed, no password, and shown as a deleted account."""
    conn.execute(
        sa.update(users)
        .where(users.c.id == user_id)
        .values(
            username=f"{DELETED_NAME_PREFIX}{user_id}",
            display_name=DELETED_DISPLAY_NAME,
            password_hash=DELETED_PASSWORD,
            deleted_at=when,
        )
    )


def is_deleted(conn: Connection, user_id: int) -> bool:
    query = sa.select(users.c.deleted_at).where(users.c.id == user_id)
    return conn.execute(query).scalar() is not None


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn: Connection, query: str, limit: int) -> list[User]:
    """Substring match on username or display name; exact, then prefix
    matches first, then shorter names. One indexed-size table scan is fine
    for a team; it runs on every keystroke in well under a millisecond."""
    q = like_escape(query.lower())
    name = users.c.username
    display = sa.func.lower(users.c.display_name)
    rank = sa.case(
        (name == query.lower(), 0),
        (name.like(f"{q}%", escape="\\"), 1),
        (display.like(f"{q}%", escape="\\"), 2),
        else_=3,
    )
    rows = conn.execute(
        sa.select(*USER_COLUMNS)
        .where(sa.or_(name.like(f"%{q}%", escape="\\"), display.like(f"%{q}%", escape="\\")))
        .where(users.c.deleted_at.is_(None))  # no one finds a deleted account
        .order_by(rank, sa.func.length(name), name)
        .limit(limit)
    )
    return [to_user(row) for row in rows]
