"""Time in tests passes when the test says, never by sleeping: a clock a
test moves by hand, for code that takes `now` (crab/core/clock.py's `now` is
the real one), and `settle` for asserting that something still waits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class Clock:
    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


async def settle(turns: int = 10) -> None:
    """Lets every task that can go on, go on, until each waits on something
    (a few turns of the event loop): what must still be waiting then is
    asserted on without any time passing."""
    for _ in range(turns):
        await asyncio.sleep(0)
