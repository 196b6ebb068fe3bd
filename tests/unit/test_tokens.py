"""Access tokens: a verified token is remembered until it expires, never
past it, and remembering one token lets no altered copy through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crab.core.domain.models import Caller
from crab.core.services.tokens import AccessTokens
from crab.errors import Unauthenticated
from tests.helpers.clock import Clock

SECRET = "s" * 40


def test_a_remembered_token_still_expires() -> None:
    clock = Clock()
    access = AccessTokens(SECRET, timedelta(seconds=2), now=clock.now)
    token, expires = access.issue(Caller(7, 3), clock.now())
    assert access.read(token) == Caller(7, 3)
    assert access.read(token) == Caller(7, 3)  # from what was verified
    clock.at = datetime.fromtimestamp(int(expires.timestamp()) + 1.05, UTC)
    with pytest.raises(Unauthenticated, match="expired"):
        access.read(token)


def test_remembering_a_token_lets_no_altered_copy_through() -> None:
    access = AccessTokens(SECRET, timedelta(minutes=15))
    token, _ = access.issue(Caller(7, 3), datetime.now(UTC))
    assert access.read(token) == Caller(7, 3)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for altered in (f"{head}.{body}.{flipped}", token + "x", f"{head}.{body}."):
        with pytest.raises(Unauthenticated):
            access.read(altered)
    other = AccessTokens("t" * 40, timedelta(minutes=15))
    with pytest.raises(Unauthenticated):
        other.read(token)  # another server's secret
