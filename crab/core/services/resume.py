"""What a Resume may cost on one session stream.

A Resume names, per chat, the newest message id the client saw and the
newest change number it applied (docs/conversation.md). Only the
stream's first frame replays from it: later Resume frames may move a chat's
point forward (skip), never back, so nothing is sent twice on one stream.
Cursors are checked before any work: more than the cap is refused, chats the
caller is not in are dropped, duplicates collapse. Resume frames on an open
stream take a token from the stream's own bucket; an empty bucket ends it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from crab.core.domain.validation import clamp_id
from crab.errors import InvalidArgument, ResourceExhausted


@dataclass(frozen=True, slots=True)
class ResumeLimits:
    # Cursors in one Resume (or the caller's number of chats, if more).
    max_cursors: int = 1000
    # Resume frames per stream: `burst` at once, then `rate` a second.
    rate: float = 1.0
    burst: int = 5


class ResumeGuard:
    """One stream's Resume budget."""

    def __init__(self, limits: ResumeLimits) -> None:
        self._limits = limits
        self._tokens = float(limits.burst)
        self._updated = time.monotonic()

    def take(self) -> None:
        """Counts one Resume frame; raises ResourceExhausted beyond the bucket."""
        now = time.monotonic()
        rate, burst = self._limits.rate, self._limits.burst
        self._tokens = min(burst, self._tokens + (now - self._updated) * rate)
        self._updated = now
        if self._tokens < 1:
            raise ResourceExhausted(
                f"too many Resume frames on one stream (at most {burst}, then {rate:g}/s); "
                "resume once, in the stream's first frame"
            )
        self._tokens -= 1

    def cursors(
        self, cursors: Sequence[tuple[int, int, int]], chats: Collection[int]
    ) -> dict[int, tuple[int, int]]:
        """The cursors worth acting on: the caller's chats only, one per chat
        (the last wins), as (newest message id, newest change_seq) with both
        numbers clamped. Too many is INVALID_ARGUMENT, checked before a
        single cursor is looked at."""
        cap = max(self._limits.max_cursors, len(chats))
        if len(cursors) > cap:
            raise InvalidArgument(
                f"a Resume carries at most {cap} cursors (one per chat you are in); "
                f"got {len(cursors)}"
            )
        return {
            chat: (clamp_id(seen), clamp_id(changed))
            for chat, seen, changed in cursors
            if chat in chats
        }
