"""Accounts: sign up, sign in, refresh, sign out, and who a token names."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import events as ev
from crab.core.domain.models import Caller, User
from crab.core.domain.validation import check_password, clean_display_name, normalize_username
from crab.core.services.passwords import Passwords
from crab.core.services.profile import Profile
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.sign_in_throttle import SignInThrottle
from crab.core.services.tokens import AccessTokens, Tokens, hash_refresh_token, new_refresh_token
from crab.core.storage import sessions, users
from crab.core.storage.database import Database
from crab.errors import (
    AlreadyExists,
    Conflict,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

log = logging.getLogger(__name__)

REFUSAL_HOLD = 1.0  # seconds a refused sign-in (backing off, queue full) is held


class Accounts:
    def __init__(
        self,
        database: Database,
        broker: Broker,
        passwords: Passwords,
        access: AccessTokens,
        refresh_ttl: timedelta,
        signup_open: bool,
        limits: Limits,
    ) -> None:
        self._database = database
        self._broker = broker
        self._passwords = passwords
        self._access = access
        self._refresh_ttl = refresh_ttl
        self.signup_open = signup_open
        self._signups = RateLimiter.of(limits.signup_per_address, "sign-ups from your address")
        self._failures = SignInThrottle(
            limits.sign_in_failures, limits.sign_in_failures_per_address
        )
        self.profile = Profile(database, broker, passwords, self._failures, limits)

    def close(self) -> None:
        self._passwords.close()

    async def create_user(
        self, username: str, password: str, display_name: str = "", source: str = ""
    ) -> User:
        """Used by sign-up and by the admin's `crab user add` (source "")."""
        name, shown = _checked(username, password, display_name)
        return await self._insert(name, password, shown, source)

    async def _insert(self, name: str, password: str, shown: str, source: str) -> User:
        if await self._database.read(users.exists, name):
            raise AlreadyExists(f"username {name!r} is taken")
        password_hash = await self._passwords.hash(password, source)
        try:
            return await self._database.write(users.insert, name, shown, password_hash, now())
        except Conflict:
            raise AlreadyExists(f"username {name!r} is taken") from None

    async def sign_up(
        self, username: str, password: str, display_name: str = "", source: str = ""
    ) -> Tokens:
        """`source`: the caller's address (sign-ups are rate-limited per address)."""
        if not self.signup_open:
            raise PermissionDenied(
                "sign-up is closed on this server; ask your admin for an account"
            )
        name, shown = _checked(username, password, display_name)
        self._signups.take(source)  # after the checks: a typo costs no sign-up
        return await self._open_session(await self._insert(name, password, shown, source))

    async def sign_in(self, username: str, password: str, source: str = "") -> Tokens:
        """`source`: the caller's address. Refused before any hashing while
        this account from this address (or this address) is backing off, or
        when the hashing queue has no place for it."""
        name = username.strip().lower()
        try:
            self._failures.check(name, source)
            found = await self._database.read(users.credentials, name)
            ok = await self._passwords.verify(found[1] if found else None, password, source)
        except ResourceExhausted:
            # Held a moment before the answer (the hash is not queued): a
            # guessing loop cannot spin on refusals and take the CPU that
            # everyone else's hashes need.
            await asyncio.sleep(REFUSAL_HOLD)
            raise
        if found is None or not ok:
            self._failures.failed(name, source)
            raise Unauthenticated("wrong username or password")
        self._failures.succeeded(name, source)
        return await self._open_session(found[0])

    async def _open_session(self, user: User) -> Tokens:
        refresh = new_refresh_token()
        when = now()
        session_id = await self._database.write(
            sessions.create, user.id, hash_refresh_token(refresh), when, when + self._refresh_ttl
        )
        access, expires = self._access.issue(Caller(user.id, session_id), when)
        return Tokens(access, refresh, expires, user)

    async def refresh(self, refresh_token: str) -> Tokens:
        """A new access token, and a new refresh token replacing the old one.
        A refresh token is good for one rotation: presented again (a thief
        and its owner both hold it), it signs its session out (OAuth's advice
        for rotated refresh tokens) and live streams of that session end."""
        when = now()
        old_hash = hash_refresh_token(refresh_token)
        refresh = new_refresh_token()
        rotated, reused, user = await self._database.write(
            _rotate, old_hash, hash_refresh_token(refresh), when, when + self._refresh_ttl
        )
        if reused is not None:
            session_id, user_id = reused
            log.warning("refresh token used twice: session %d of user %d signed out", *reused)
            await self._broker.publish(ev.user_topic(user_id), ev.SessionEnded(user_id, session_id))
            raise Unauthenticated(
                "refresh token already used; this session is signed out, sign in again"
            )
        if rotated is None or user is None:
            raise Unauthenticated("refresh token invalid, expired or signed out")
        access, expires = self._access.issue(Caller(user.id, rotated[0]), when)
        return Tokens(access, refresh, expires, user)

    async def authenticate(self, token: str) -> Caller:
        """Checks the token and that its session is still signed in."""
        caller = self._access.read(token)
        user_id, session_id = caller.user_id, caller.session_id
        if not await self._database.read_now(sessions.is_active, session_id, user_id, now()):
            raise Unauthenticated("session signed out or expired; sign in again")
        return caller

    async def sign_out(self, caller: Caller, everywhere: bool) -> None:
        if everywhere:
            await self._database.write(sessions.revoke_all, caller.user_id, now())
        else:
            await self._database.write(sessions.revoke, caller.session_id, now())
        ended = None if everywhere else caller.session_id
        await self._broker.publish(
            ev.user_topic(caller.user_id), ev.SessionEnded(caller.user_id, ended)
        )

    async def who_am_i(self, caller: Caller) -> User:
        user = await self._database.read(users.by_id, caller.user_id)
        if user is None:
            raise NotFound("your account no longer exists")
        return user

    async def list_users(self) -> list[User]:
        return await self._database.read(users.list_all)


Session = tuple[int, int]  # (session id, user id)


def _rotate(
    conn: Connection, old_hash: str, new_hash: str, when: datetime, expires_at: datetime
) -> tuple[Session | None, Session | None, User | None]:
    """(the session rotated, or the one whose spent token this was (now
    revoked), and the user of the rotated one): one transaction."""
    rotated = sessions.rotate(conn, old_hash, new_hash, when, expires_at)
    reused = None
    if rotated is None:
        reused = sessions.by_previous_refresh_hash(conn, old_hash, when)
        if reused is not None:
            sessions.revoke(conn, reused[0], when)
    user = users.by_id(conn, rotated[1]) if rotated is not None else None
    return rotated, reused, user


def _checked(username: str, password: str, display_name: str) -> tuple[str, str]:
    """(username, display name) as stored, or InvalidArgument."""
    name = normalize_username(username)
    check_password(password)
    return name, clean_display_name(display_name, name)
