"""Identities: which account an identity provider's (issuer, subject) is."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import User
from crab.core.storage import users
from crab.core.storage.tables import identities
from crab.core.storage.tables import users as users_table
from crab.errors import AlreadyExists

# The password hash of an account made by single sign-on: no password
# verifies against it (argon2 refuses it as a hash); sign-in treats it as
# an unknown user, so timing does not tell such accounts apart.
NO_PASSWORD = "!sso"


def user_for(conn: Connection, issuer: str, subject: str) -> User | None:
    row = conn.execute(
        sa.select(*users.USER_COLUMNS)
        .join(identities, identities.c.user_id == users_table.c.id)
        .where(identities.c.issuer == issuer, identities.c.subject == subject)
    ).first()
    return users.to_user(row) if row else None


def link(conn: Connection, issuer: str, subject: str, user_id: int, now: datetime) -> None:
    """Conflict when that identity is already some account's."""
    conn.execute(
        sa.insert(identities).values(
            issuer=issuer, subject=subject, user_id=user_id, created_at=now
        )
    )


def create_account(
    conn: Connection,
    issuer: str,
    subject: str,
    wanted: str,
    display_name: str,
    now: datetime,
) -> User:
    """The identity's new account, in one transaction with its link: the
    wanted username, or the first free one of wanted-2, wanted-3, ... A
    competing first sign-in of the same identity (another replica) makes
    this a Conflict, and the caller reads the account it made."""
    name = free_username(conn, wanted)
    user = users.insert(conn, name, display_name or name, NO_PASSWORD, now)
    link(conn, issuer, subject, user.id, now)
    return user


def free_username(conn: Connection, wanted: str) -> str:
    taken = set(
        conn.execute(
            sa.select(users_table.c.username).where(
                users_table.c.username.like(users.like_escape(wanted[:28]) + "%", escape="\\")
            )
        ).scalars()
    )
    if wanted not in taken:
        return wanted
    for n in range(2, 1000):
        suffix = f"-{n}"
        candidate = wanted[: 32 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise AlreadyExists(f"no free username like {wanted!r}; ask your admin to link the account")


def unlink_all(conn: Connection, user_id: int) -> None:
    """The account's identities let no one sign in as it any more."""
    conn.execute(sa.delete(identities).where(identities.c.user_id == user_id))
