"""Usernames made from what an identity provider says about someone."""

from __future__ import annotations

import pytest

from crab.core.domain.validation import USERNAME_RE, username_from


@pytest.mark.parametrize(
    ("given", "made"),
    [
        ("alice", "alice"),
        ("Alice.Smith", "alice.smith"),
        ("alice@example.com", "alice"),
        ("José Núñez", "jose-nunez"),
        ("--..alice..--", "alice"),
        ("a b c d", "a-b-c-d"),
        ("x" * 40, "x" * 32),
        ("ab", None),
        ("李小龙", None),
        ("@example.com", None),
        ("", None),
        ("\x1b[31mred", "31mred"),
        ("auth0|5f1e2d3c4b5a", "auth0-5f1e2d3c4b5a"),
    ],
)
def test_a_valid_username_or_none(given: str, made: str | None) -> None:
    assert username_from(given) == made
    if made is not None:
        assert USERNAME_RE.match(made)
