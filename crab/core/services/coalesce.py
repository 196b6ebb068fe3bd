"""Coalescing of ephemeral news (read positions, presence): at most one
publish per key and interval, and the newest value wins. The first change
goes out at once; changes within the interval after it wait for its end,
and only the last of them is published."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 100_000  # keys remembered for their interval; beyond it, sent at once


class Coalescer(Generic[K, V]):
    def __init__(
        self,
        interval: float,
        publish: Callable[[K, V], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._publish = publish
        self._clock = clock
        self._sent_at: dict[K, float] = {}  # key -> when last published
        self._waiting: dict[K, V] = {}  # key -> the newest value not yet published
        self._timers: set[asyncio.Task[None]] = set()

    async def put(self, key: K, value: V) -> None:
        now = self._clock()
        if key in self._waiting:
            self._waiting[key] = value  # the flush already scheduled takes it
            return
        last = self._sent_at.get(key)
        if last is None or now - last >= self._interval:
            self._forget(now)
            self._sent_at[key] = now
            await self._send(key, value)
            return
        self._waiting[key] = value
        task = asyncio.ensure_future(self._flush_later(key, last + self._interval - now))
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _flush_later(self, key: K, delay: float) -> None:
        await asyncio.sleep(delay)
        value = self._waiting.pop(key)
        self._sent_at[key] = self._clock()
        await self._send(key, value)

    async def _send(self, key: K, value: V) -> None:
        try:
            await self._publish(key, value)
        except Exception:
            # Ephemeral news: a broker hiccup loses it, the next change corrects it.
            log.warning("could not publish %r", key, exc_info=True)

    def _forget(self, now: float) -> None:
        """Keeps memory bounded: keys whose interval is over need no entry."""
        if len(self._sent_at) < MAX_KEYS:
            return
        self._sent_at = {k: t for k, t in self._sent_at.items() if now - t < self._interval}

    def close(self) -> None:
        for task in list(self._timers):
            task.cancel()
