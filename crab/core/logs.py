"""Log lines that cannot flood the log: a stranger who makes the server
refuse 1,000 requests a second gets one line every few seconds, with a
count of the ones left out, not 1,000 lines (or tracebacks) a second."""

from __future__ import annotations

import logging
import time
from typing import Any

EVERY_SECONDS = 10.0


class Throttled:
    """At most one line per `every` seconds for one kind of event."""

    def __init__(self, logger: logging.Logger, kind: str, every: float = EVERY_SECONDS) -> None:
        self._logger = logger
        self._kind = kind
        self._every = every
        self._last = -every
        self._left_out = 0

    def warning(self, message: str, *args: Any) -> None:
        self.log(logging.WARNING, message, *args)

    def log(self, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._left_out += 1
            return
        self._last = now
        if self._left_out:
            message += f" (and {self._left_out} more {self._kind} since the last line)"
            self._left_out = 0
        self._logger.log(level, f"{self._kind}: {message}", *args)
