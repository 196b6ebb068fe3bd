"""A token bucket per user: bursts are fine, floods are refused early
instead of queueing without bound."""

from __future__ import annotations

import time
from dataclasses import dataclass

from crab.errors import ResourceExhausted


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[int, _Bucket] = {}

    def take(self, user_id: int) -> None:
        now = time.monotonic()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(float(self._burst), now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise ResourceExhausted(
                f"sending too fast: at most {self._rate:g} messages per second; slow down"
            )
        bucket.tokens -= 1
