"""The pure rules behind attack 4 of issue 10: token buckets per key with
bounded memory, failed sign-ins backing off per (account, address) and per
address, and the bounded password-hashing queue."""

from __future__ import annotations

import asyncio
import threading

import pytest

from crab.config import Rate
from crab.core.services.passwords import Passwords
from crab.core.services.rate_limit import SWEEP_SECONDS, RateLimiter, take_all
from crab.core.services.sign_in_throttle import MAX_WAIT, SignInThrottle
from crab.errors import ResourceExhausted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- rate limits ---------------------------------------------------------------


def test_rates_read_as_people_write_them() -> None:
    assert Rate.parse("20/min") == Rate(20, 60)
    assert Rate.parse(" 30/h ").per_second == 30 / 3600
    assert str(Rate(5, 86400)) == "5/day"
    for bad in ("20", "0/min", "-1/s", "x/min", "20/week", "1.5/s"):
        with pytest.raises(ValueError, match="not a rate"):
            Rate.parse(bad)


def test_a_bucket_per_key_refuses_past_its_burst_and_refills() -> None:
    clock = Clock()
    rooms = RateLimiter(1.0, 3, "too many rooms: wait {wait} s", clock=clock)
    for _ in range(3):
        rooms.take("10.0.0.1")
    with pytest.raises(ResourceExhausted, match="too many rooms: wait 1 s"):
        rooms.take("10.0.0.1")
    rooms.take(7)  # another key (a user id) has its own bucket
    clock.now += 1.0
    rooms.take("10.0.0.1")


def test_the_refusal_says_which_limit_was_hit() -> None:
    limiter = RateLimiter.of(Rate(2, 60), "rooms created by you")
    limiter.take(1)
    limiter.take(1)
    with pytest.raises(ResourceExhausted) as refused:
        limiter.take(1)
    assert (
        refused.value.message == "too many rooms created by you: at most 2/min; try again in 30 s"
    )


def test_taking_from_two_limits_takes_from_neither_when_one_refuses() -> None:
    clock = Clock()
    by_user = RateLimiter(1.0, 2, clock=clock)
    by_address = RateLimiter(1.0, 1, clock=clock)
    take_all((by_user, 1), (by_address, "a"))
    with pytest.raises(ResourceExhausted):
        take_all((by_user, 1), (by_address, "a"))
    by_user.take(1)  # the refused call took nothing from the user's bucket
    with pytest.raises(ResourceExhausted):
        by_user.take(1)


def test_memory_is_bounded_full_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, max_keys=100, clock=clock)
    for n in range(1_000):
        limiter.take(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 100  # the least recently used went first
    clock.now += SWEEP_SECONDS
    limiter.take("fresh")
    assert len(limiter) == 1  # everyone else's bucket is full again


# ---- failed sign-ins -----------------------------------------------------------


def test_failures_back_off_per_account_and_address_doubling() -> None:
    clock = Clock()
    throttle = SignInThrottle(5, 20, clock=clock)
    for _ in range(4):
        throttle.check("alice", "10.0.0.9")
        throttle.failed("alice", "10.0.0.9")
    throttle.check("alice", "10.0.0.9")  # four failures are free
    throttle.failed("alice", "10.0.0.9")
    with pytest.raises(ResourceExhausted, match=r"too many failed sign-ins; try again in 1 s"):
        throttle.check("alice", "10.0.0.9")
    throttle.check("alice", "10.0.0.7")  # the owner, elsewhere, is not locked out
    throttle.check("bob", "10.0.0.9")
    waits = []
    for _ in range(4):
        clock.now += 1000
        throttle.failed("alice", "10.0.0.9")
        with pytest.raises(ResourceExhausted) as refused:
            throttle.check("alice", "10.0.0.9")
        waits.append(refused.value.message)
    assert waits == [f"too many failed sign-ins; try again in {s} s" for s in (2, 4, 8, 16)]
    for _ in range(100):
        throttle.failed("alice", "10.0.0.9")
    with pytest.raises(ResourceExhausted, match=f"try again in {MAX_WAIT:.0f} s"):
        throttle.check("alice", "10.0.0.9")


def test_a_success_clears_its_account_and_address_only() -> None:
    clock = Clock()
    throttle = SignInThrottle(2, 3, clock=clock)
    throttle.failed("alice", "a")
    throttle.failed("alice", "a")
    throttle.succeeded("alice", "a")
    throttle.check("alice", "a")
    throttle.failed("alice", "a")  # the address has three failures now
    with pytest.raises(ResourceExhausted):
        throttle.check("carol", "a")  # past the address's allowance: any account


def test_an_address_backs_off_across_accounts() -> None:
    throttle = SignInThrottle(5, 20, clock=Clock())
    for n in range(20):
        throttle.check(f"guess{n}", "10.0.0.9")
        throttle.failed(f"guess{n}", "10.0.0.9")
    with pytest.raises(ResourceExhausted):
        throttle.check("guess99", "10.0.0.9")
    throttle.check("guess99", "10.0.0.8")


def test_failures_are_forgotten_after_a_quiet_hour_and_memory_is_bounded() -> None:
    clock = Clock()
    throttle = SignInThrottle(1, 100, clock=clock, max_keys=50)
    throttle.failed("alice", "a")
    clock.now += 3 * 3600
    throttle.failed("alice", "a")  # counted from one again: a 1 s wait, not 2 s
    with pytest.raises(ResourceExhausted, match="try again in 1 s"):
        throttle.check("alice", "a")
    for n in range(1_000):
        throttle.failed(f"user{n}", f"10.1.{n // 256}.{n % 256}")
    assert len(throttle) == 50


# ---- the hashing queue ---------------------------------------------------------


class HeldHasher:
    """Each verify waits until released: hashes that take as long as we say."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Semaphore(0)

    def verify(self, password_hash: str, password: str) -> bool:
        self.running.release()
        self.release.wait(10)
        return True

    def hash(self, password: str) -> str:
        return "h"


async def test_the_hashing_queue_is_bounded_in_all_and_per_address() -> None:
    passwords = Passwords(cheap=True, queue=3, queue_per_address=2)
    held = HeldHasher()
    passwords._hasher = held  # type: ignore[assignment]
    try:
        first = [asyncio.create_task(passwords.verify("h", "pw", "a")) for _ in range(2)]
        await asyncio.sleep(0)  # admitted: they started
        with pytest.raises(ResourceExhausted, match="from your address at once"):
            await passwords.verify("h", "pw", "a")
        other = asyncio.create_task(passwords.verify("h", "pw", "b"))
        await asyncio.sleep(0)
        with pytest.raises(ResourceExhausted, match="busy checking passwords"):
            await passwords.verify("h", "pw", "c")
        assert passwords.queued == 3
        held.release.set()
        assert await asyncio.gather(*first, other) == [True, True, True]
        assert passwords.queued == 0
        assert await passwords.verify("h", "pw", "c")
    finally:
        held.release.set()
        passwords.close()


async def test_a_caller_that_gives_up_keeps_its_place_until_its_hash_ends() -> None:
    passwords = Passwords(cheap=True, queue=2, queue_per_address=2)
    held = HeldHasher()
    passwords._hasher = held  # type: ignore[assignment]
    try:
        running = asyncio.create_task(passwords.verify("h", "pw", "a"))
        await asyncio.to_thread(held.running.acquire, True, 10)  # in its thread now
        waiting = asyncio.create_task(passwords.verify("h", "pw", "a"))
        await asyncio.sleep(0)
        assert passwords.queued == 2
        running.cancel()
        waiting.cancel()  # still queued behind it: cancelled outright
        for task in (running, waiting):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert passwords.queued == 1  # the running hash still holds its place
        held.release.set()
        await asyncio.to_thread(passwords._threads.shutdown, True)  # its thread is done
        assert passwords.queued == 0
    finally:
        held.release.set()
        passwords.close()
