"""The worker while the database is away: a command that failed for an
outage is tried again with backoff instead of being dropped, for at most
`wait` seconds from when the outage began; after that each command is
tried once and answered "unavailable" until the database answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from crab.core.storage.failures import as_crab_error
from crab.errors import DatabaseUnavailable

T = TypeVar("T")

FIRST_PAUSE = 0.1  # seconds before the first retry; doubled each time
MAX_PAUSE = 2.0


class DatabaseOutage:
    def __init__(self, wait: float) -> None:
        self._wait = wait
        self._since: float | None = None  # loop time of the first failure

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`'s result; tried again while it fails because the
        database is away (then DatabaseUnavailable at the end of the wait).
        Any other exception is the caller's."""
        loop = asyncio.get_running_loop()
        pause = FIRST_PAUSE
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                error = as_crab_error(exc)
                if not isinstance(error, DatabaseUnavailable):
                    raise
                now = loop.time()
                if self._since is None:
                    self._since = now
                left = self._since + self._wait - now
                if left <= 0:
                    raise error from None
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, MAX_PAUSE)
            else:
                self._since = None
                return result
