"""Accounts: sign up, sign in, refresh, sign out, and who a token names."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core import metrics
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import events as ev
from crab.core.domain.models import Caller, User
from crab.core.domain.validation import (
    check_password,
    clean_display_name,
    normalize_username,
    username_from,
)
from crab.core.services.oidc import Identity, IdentityProvider
from crab.core.services.passwords import Passwords
from crab.core.services.profile import Profile
from crab.core.services.rate_limit import RateLimiter
from crab.core.services.sign_in_throttle import SignInThrottle
from crab.core.services.tokens import AccessTokens, Tokens, hash_refresh_token, new_refresh_token
from crab.core.storage import identities, sessions, users
from crab.core.storage.database import Database
from crab.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

log = logging.getLogger(__name__)

REFUSAL_HOLD = 1.0  # seconds a refused sign-in (backing off, queue full) is held
# Failed identity-provider sign-ins are throttled per address under this
# name (no username is known before the token checks out).
PROVIDER_ACCOUNT = "!provider"
NO_PASSWORDS = "passwords are turned off on this server; sign in with the team's identity provider"


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
        provider: IdentityProvider | None = None,
        passwords_on: bool = True,
    ) -> None:
        self._database = database
        self._broker = broker
        self._passwords = passwords
        self._access = access
        self._refresh_ttl = refresh_ttl
        self.signup_open = signup_open
        self.provider = provider
        self.passwords_on = passwords_on
        self._signups = RateLimiter.of(limits.signup_per_address, "sign-ups from your address")
        self._failures = SignInThrottle(
            limits.sign_in_failures, limits.sign_in_failures_per_address
        )
        self.profile = Profile(database, broker, passwords, self._failures, limits, passwords_on)

    async def close(self) -> None:
        self._passwords.close()
        if self.provider is not None:
            await self.provider.close()

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
        if not self.passwords_on:
            raise FailedPrecondition(NO_PASSWORDS)
        if not self.signup_open:
            raise PermissionDenied(
                "sign-up is closed on this server; ask your admin for an account"
            )
        name, shown = _checked(username, password, display_name)
        self._signups.take(source)  # after the checks: a typo costs no sign-up
        user = await self._insert(name, password, shown, source)
        log.info("account %s signed up", user.username)
        return await self._open_session(user)

    async def sign_in(self, username: str, password: str, source: str = "") -> Tokens:
        """`source`: the caller's address. Refused before any hashing while
        this account from this address (or this address) is backing off, or
        when the hashing queue has no place for it."""
        return await _counted("password", self._sign_in(username, password, source))

    async def _sign_in(self, username: str, password: str, source: str) -> Tokens:
        if not self.passwords_on:
            raise FailedPrecondition(NO_PASSWORDS)
        name = username.strip().lower()
        try:
            _throttled(self._failures, name, source, "password")
            found = await self._database.read(users.credentials, name)
            # An account of the identity provider has no password: checked
            # as an unknown user is, the time taken tells nothing.
            stored = found[1] if found and not found[1].startswith("!") else None
            ok = await self._passwords.verify(stored, password, source)
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

    async def sign_in_with_provider(self, id_token: str, source: str = "") -> Tokens:
        """The provider's ID token, checked once here, for crab's own tokens.
        The first sign-in of an identity makes its account (unless sign-up
        is closed: then an admin links it first, `crab user link`)."""
        return await _counted("provider", self._sign_in_with_provider(id_token, source))

    async def _sign_in_with_provider(self, id_token: str, source: str) -> Tokens:
        if self.provider is None:
            raise FailedPrecondition("this server has no single sign-on; sign in with a password")
        try:
            _throttled(self._failures, PROVIDER_ACCOUNT, source, "provider")
        except ResourceExhausted:
            await asyncio.sleep(REFUSAL_HOLD)
            raise
        try:
            identity = await self.provider.verify(id_token)
        except Unauthenticated:
            self._failures.failed(PROVIDER_ACCOUNT, source)
            raise
        user = await self._database.read(identities.user_for, identity.issuer, identity.subject)
        if user is None:
            user = await self._first_sign_in(identity)
        self._failures.succeeded(PROVIDER_ACCOUNT, source)
        return await self._open_session(user)

    async def _first_sign_in(self, identity: Identity) -> User:
        if not self.signup_open:
            raise PermissionDenied(
                "no crab account is linked to this identity and sign-up is closed; "
                f"ask your admin to run: crab user link NAME --subject {identity.subject}"
            )
        assert self.provider is not None
        claims = identity.claims
        wanted = _username_of(claims, self.provider.settings.username_claim)
        name = claims.get("name")
        try:
            shown = clean_display_name(name[:64] if isinstance(name, str) else "", wanted)
        except InvalidArgument:
            shown = ""  # a name with controls or invisible characters: the username
        try:
            user = await self._database.write(
                identities.create_account, identity.issuer, identity.subject, wanted, shown, now()
            )
        except Conflict:
            # The same identity's first sign-in on another replica made it.
            found = await self._database.read(
                identities.user_for, identity.issuer, identity.subject
            )
            if found is None:
                raise
            return found
        log.info("account %s made by the identity provider's first sign-in", user.username)
        return user

    async def link_identity(self, username: str, subject: str, issuer: str = "") -> User:
        """The admin's `crab user link`: that identity signs in as that account."""
        issuer = (issuer or (self.provider.issuer if self.provider else "")).rstrip("/")
        if not issuer:
            raise InvalidArgument("which identity provider? give --issuer or --oidc-issuer")
        if not subject or len(subject) > 255:
            raise InvalidArgument("the subject must be 1 to 255 characters")
        found = await self._database.read(users.credentials, username.strip().lower())
        if found is None:
            raise NotFound(f"no account named {username!r}")
        try:
            await self._database.write(identities.link, issuer, subject, found[0].id, now())
        except Conflict:
            raise AlreadyExists("that identity is already linked to an account") from None
        return found[0]

    async def _open_session(self, user: User) -> Tokens:
        refresh = new_refresh_token()
        when = now()
        session_id = await self._database.write(
            _new_session, user.id, hash_refresh_token(refresh), when, when + self._refresh_ttl
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
            refusal = await self._database.read(sessions.refresh_refusal, old_hash)
            if refusal is not None:
                raise PermissionDenied(refusal)
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


def _new_session(
    conn: Connection, user_id: int, refresh_hash: str, when: datetime, expires_at: datetime
) -> int:
    """A session, unless an admin disabled or deleted the account: checked
    in the same transaction, the user's row locked (users.sign_in_refusal)."""
    refusal = users.sign_in_refusal(conn, user_id)
    if refusal is not None:
        raise PermissionDenied(refusal)
    return sessions.create(conn, user_id, refresh_hash, when, expires_at)


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


def _username_of(claims: dict[str, object], claim: str) -> str:
    """From the chosen claim, else the email's local part, else the subject."""
    for key in (claim, "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and (name := username_from(value[:255])):
            return name
    return "member"


def _checked(username: str, password: str, display_name: str) -> tuple[str, str]:
    """(username, display name) as stored, or InvalidArgument."""
    name = normalize_username(username)
    check_password(password)
    return name, clean_display_name(display_name, name)


async def _counted(method: str, signing_in: Awaitable[Tokens]) -> Tokens:
    """A sign-in, counted by its method and how it ended."""
    try:
        tokens = await signing_in
    except Exception as error:
        metrics.SIGN_INS.labels(method, metrics.status_of(error)).inc()
        raise
    metrics.SIGN_INS.labels(method, "OK").inc()
    return tokens


def _throttled(failures: SignInThrottle, account: str, source: str, method: str) -> None:
    """The throttle's check, its refusals counted (those of a full hashing
    queue are RESOURCE_EXHAUSTED too, but not throttled)."""
    try:
        failures.check(account, source)
    except ResourceExhausted:
        metrics.SIGN_IN_THROTTLED.labels(method).inc()
        raise
