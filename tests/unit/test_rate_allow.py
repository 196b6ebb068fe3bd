"""RateLimiter.allow: a token if there is one, else False and nothing
taken; what a session's typing notices (one per 2 s per chat) and its
away/back changes go through."""

from __future__ import annotations

from crab.core.services.rate_limit import RateLimiter


def test_one_typing_notice_per_interval_per_chat() -> None:
    now = [0.0]
    typing = RateLimiter(1 / 2.0, 1, clock=lambda: now[0])
    assert typing.allow(7)
    assert not typing.allow(7)  # within the interval
    assert typing.allow(8)  # another chat: its own interval
    now[0] = 1.9
    assert not typing.allow(7)
    now[0] = 2.0
    assert typing.allow(7)


def test_a_refusal_takes_nothing() -> None:
    limiter = RateLimiter(1.0, 2, clock=lambda: 0.0)
    assert limiter.allow("a") and limiter.allow("a")
    for _ in range(5):
        assert not limiter.allow("a")
    assert limiter.wait("a") == 1.0  # still one second away: the refusals took no token
