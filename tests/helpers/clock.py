"""A clock a test moves by hand, for code that takes `now` (crab/core/clock.py's
`now` is the real one): time passes when the test says, never by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime.now(UTC)

    def now(self) -> datetime:
        return self.at
