"""Failed sign-ins, counted per (account, source address) and per source
address. Past a free allowance each further failure doubles the wait
before that key's next attempt is even hashed (1 s, 2 s, 4 s ... 15 min).
Nothing is counted per account alone: an attacker at one address cannot
lock the account's owner out from another. A successful sign-in clears its
(account, address) count; an address's count fades after a quiet spell."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from crab.errors import ResourceExhausted

MAX_WAIT = 15 * 60.0
FORGET_AFTER = 60 * 60.0  # a key quiet this long past its wait starts afresh
MAX_KEYS = 100_000

Key = tuple[str, str] | str


@dataclass(slots=True)
class _Failures:
    count: int
    until: float  # no attempt before this (clock seconds)
    last: float


class SignInThrottle:
    def __init__(
        self,
        free_per_account: int,
        free_per_address: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._free: dict[type, int] = {tuple: free_per_account, str: free_per_address}
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[Key, _Failures] = {}  # least recently failed first

    def __len__(self) -> int:
        return len(self._failures)

    @staticmethod
    def _keys(account: str, address: str) -> tuple[Key, Key]:
        return (account[:64], address), address

    def check(self, account: str, address: str) -> None:
        """ResourceExhausted if this account from this address, or this
        address at all, must wait before its next attempt."""
        now = self._clock()
        for key in self._keys(account, address):
            found = self._failures.get(key)
            if found is not None and found.until > now:
                wait = max(1, math.ceil(found.until - now))
                raise ResourceExhausted(f"too many failed sign-ins; try again in {wait} s")

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        for key in self._keys(account, address):
            found = self._failures.pop(key, None)  # re-inserted: most recent
            if found is None or now - max(found.until, found.last) > FORGET_AFTER:
                found = _Failures(0, now, now)
                while len(self._failures) >= self._max_keys:
                    del self._failures[next(iter(self._failures))]
            found.count += 1
            found.last = now
            free = self._free[type(key)]
            if found.count >= free:
                found.until = now + min(MAX_WAIT, 2.0 ** min(found.count - free, 20))
            self._failures[key] = found

    def succeeded(self, account: str, address: str) -> None:
        self._failures.pop(self._keys(account, address)[0], None)
