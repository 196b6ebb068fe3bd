"""My profile: the display name others see, and my password.

A new display name goes through the worker (`handle_set_display_name`):
everyone who shares a chat with me must get it live, on every server
process. A new password does not: nobody else needs to see it, so it is
one direct write, like sign-up's; what others must learn (my other
sessions are over) is the SessionEnded event that sign-out publishes."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import Caller, User
from crab.core.domain.validation import check_password, clean_new_display_name
from crab.core.services.passwords import Passwords
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.request_ids import request_id
from crab.core.services.sign_in_throttle import SignInThrottle
from crab.core.storage import chats, sessions, users
from crab.core.storage.database import Database
from crab.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)

REFUSAL_HOLD = 1.0  # seconds a refused check (backing off, queue full) is held


class Profile:
    def __init__(
        self,
        database: Database,
        broker: Broker,
        passwords: Passwords,
        failures: SignInThrottle,
        limits: Limits,
        passwords_on: bool = True,
    ) -> None:
        self._passwords_on = passwords_on
        self._database = database
        self._broker = broker
        self._passwords = passwords
        self._failures = failures  # shared with sign-in: one budget of guesses
        self._names = RateLimiter.of(limits.display_names_per_user, "display name changes")
        self._changes = RateLimiter.of(limits.password_changes_per_user, "password changes")

    async def set_display_name(self, caller: Caller, display_name: str, request: str = "") -> User:
        command = cmd.SetDisplayName(
            caller.user_id, clean_new_display_name(display_name), request_id(request)
        )
        self._names.take(caller.user_id)
        return await self._broker.request(command)

    async def change_password(
        self, caller: Caller, current: str, new: str, source: str = ""
    ) -> None:
        """The current password is checked as a sign-in is (the same
        throttle, so this is no side door for guessing); the new one by
        sign-up's rules. Every other session ends; this one goes on."""
        if not self._passwords_on:
            raise FailedPrecondition(
                "passwords are turned off on this server; the identity provider signs you in"
            )
        check_password(new)
        if new == current:
            raise InvalidArgument("the new password is the same as the current one")
        user = await self._database.read(users.by_id, caller.user_id)
        if user is None:
            raise NotFound("your account no longer exists")
        name = user.username
        try:
            self._failures.check(name, source)
            self._changes.take(caller.user_id)
            stored = await self._database.read(users.password_hash, caller.user_id)
            if stored is not None and stored.startswith("!"):
                raise FailedPrecondition(
                    "this account signs in with the identity provider; it has no password"
                )
            ok = await self._passwords.verify(stored, current, source)
        except ResourceExhausted:
            await asyncio.sleep(REFUSAL_HOLD)  # as sign-in: no spinning on refusals
            raise
        if not ok:
            self._failures.failed(name, source)
            raise PermissionDenied("the current password is wrong")
        self._failures.succeeded(name, source)
        new_hash = await self._passwords.hash(new, source)
        await self._database.write(_replace_password, caller, new_hash)
        await self._broker.publish(
            ev.user_topic(caller.user_id),
            ev.SessionEnded(caller.user_id, None, keep_session_id=caller.session_id),
        )


def _replace_password(conn: Connection, caller: Caller, new_hash: str) -> None:
    """One transaction: the new hash and the end of every other session."""
    users.set_password_hash(conn, caller.user_id, new_hash)
    sessions.revoke_all_but(conn, caller.user_id, caller.session_id, now())


# ---- the worker's handler ----------------------------------------------------


def handle_set_display_name(conn: Connection, c: cmd.SetDisplayName, out: ev.Published) -> User:
    user = users.set_display_name(conn, c.user_id, c.display_name)
    if user is None:
        raise NotFound("your account no longer exists")
    # On each person's own topic: one frame each, however many chats we share.
    for user_id in sorted(chats.co_member_ids(conn, c.user_id)):
        out.append((ev.user_topic(user_id), ev.UserUpdated(user)))
    return user
