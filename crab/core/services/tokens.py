"""Access tokens: short-lived HS256 JWTs naming the user and the session.
Refresh tokens: random strings, stored only as their sha256."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from crab.core import clock
from crab.core.domain.models import Caller, User
from crab.core.domain.validation import MAX_ID
from crab.core.storage.files import private_file
from crab.errors import Unauthenticated

ALGORITHM = "HS256"  # pinned: a token naming another algorithm is refused


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    user: User


def load_or_create_secret(data_dir: Path) -> str:
    """32 random bytes in data_dir/jwt-secret (mode 0600), made on first start."""
    path = data_dir / "jwt-secret"
    if path.exists():
        private_file(path)
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Tokens already verified, with their expiry: a client sends the same token
# on every call until it refreshes, and verifying one costs ~0.2 ms a
# call. Only the signature and claims are remembered; whether the session
# is still signed in is asked on every call (Accounts.authenticate).
VERIFIED_KEPT = 10_000


class AccessTokens:
    def __init__(
        self, secret: str, ttl: timedelta, now: Callable[[], datetime] = clock.now
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._key = OctKey.import_key(secret)
        self.ttl = ttl
        self._now = now  # a test's clock can move past an expiry without waiting
        self._verified: dict[str, tuple[Caller, int]] = {}

    def issue(self, caller: Caller, now: datetime) -> tuple[str, datetime]:
        expires = now + self.ttl
        claims = {
            "sub": str(caller.user_id),
            "sid": caller.session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode({"alg": ALGORITHM}, claims, self._key, algorithms=[ALGORITHM]), expires

    def read(self, token: str) -> Caller:
        """The caller a token names; Unauthenticated for anything wrong with it."""
        known = self._verified.get(token)
        if known is not None:
            caller, expires = known
            if self._now().timestamp() < expires:
                return caller
            del self._verified[token]
        caller, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()  # rare: 10,000 live tokens on one process
        self._verified[token] = (caller, expires)
        return caller

    def _verify(self, token: str) -> tuple[Caller, int]:
        try:
            # Only HS256 verifies, whatever the token's header names (none,
            # RS256 with our secret as a "public key"...): joserfc refuses
            # any algorithm not listed.
            found = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            if found.header.get("alg") != ALGORITHM:
                raise Unauthenticated("token algorithm not accepted")
            claims = found.claims
            caller = Caller(user_id=_user_id(claims.get("sub")), session_id=_id(claims.get("sid")))
            expires = _id(claims.get("exp"))
        except (JoseError, KeyError, ValueError, TypeError):
            raise Unauthenticated("invalid access token") from None
        # Against self._now, not the system clock (a test's clock moves past
        # an expiry without waiting): expired once a whole second has passed.
        if expires < int(self._now().timestamp()):
            raise Unauthenticated("access token expired; refresh it")
        return caller, expires


def _id(value: object) -> int:
    """Ids are the databases' BIGINT: a signed claim outside it (sid = 2**80,
    a negative or non-integer id) is a bad token, not a query that fails."""
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise Unauthenticated("invalid access token")
    return value


def _user_id(value: object) -> int:
    """`sub` is a string of digits, as issued."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise Unauthenticated("invalid access token")
    if len(value) > 19 or value.startswith("0"):
        raise Unauthenticated("invalid access token")
    return _id(int(value))
