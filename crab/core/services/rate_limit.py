"""Token buckets per key (a user id, a source address): bursts are fine,
floods are refused early instead of queueing without bound. Memory is
bounded: buckets that have filled up again are forgotten (a full bucket is
what a new one is), and past `max_keys` the least recently used goes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from crab.config import Rate
from crab.errors import ResourceExhausted

Key = str | int
MAX_KEYS = 100_000
SWEEP_SECONDS = 60.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        refusal: str = "sending too fast: at most {rate:g} messages per second; slow down",
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`refusal` is the message, with {rate} (per second) and {wait}
        (whole seconds until the next token) filled in."""
        self._rate = rate
        self._burst = burst
        self._refusal = refusal
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[Key, _Bucket] = {}  # least recently used first
        self._swept = clock()

    @classmethod
    def of(cls, rate: Rate, what: str) -> RateLimiter:
        """A limiter whose refusal says which limit was hit: "too many
        {what}: at most 20/min; try again in 3 s"."""
        refusal = f"too many {what}: at most {rate}; try again in {{wait}} s"
        return cls(rate.per_second, rate.count, refusal)

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: Key) -> float:
        """Seconds until `key` may act (0.0: now); takes nothing."""
        bucket = self._fill(key, self._clock())
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self._rate

    def take(self, key: Key) -> None:
        """One token from `key`'s bucket, or ResourceExhausted."""
        self.check(key)
        self._buckets[key].tokens -= 1

    def allow(self, key: Key) -> bool:
        """Takes a token if `key` has one: for what is dropped, not refused."""
        if self.wait(key) > 0:
            return False
        self._buckets[key].tokens -= 1
        return True

    def check(self, key: Key) -> None:
        wait = self.wait(key)
        if wait > 0:
            raise ResourceExhausted(
                self._refusal.format(rate=self._rate, wait=max(1, math.ceil(wait)))
            )

    def _fill(self, key: Key, now: float) -> _Bucket:
        if now - self._swept >= SWEEP_SECONDS:
            self._sweep(now)
        bucket = self._buckets.pop(key, None)  # re-inserted: most recently used
        if bucket is None:
            bucket = _Bucket(float(self._burst), now)
            while len(self._buckets) >= self._max_keys:
                del self._buckets[next(iter(self._buckets))]
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        self._buckets[key] = bucket
        return bucket

    def _sweep(self, now: float) -> None:
        self._swept = now
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self._rate >= self._burst
        ]
        for key in full:
            del self._buckets[key]


def take_all(*limits: tuple[RateLimiter, Key]) -> None:
    """One token from each (limiter, key), or none at all if any refuses."""
    for limiter, key in limits:
        limiter.check(key)
    for limiter, key in limits:
        limiter.take(key)
