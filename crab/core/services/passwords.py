"""argon2id password hashing, off the event loop: one hash takes ~200 ms
of CPU (on up to 4 threads) and 64 MiB, and would otherwise stall every
stream. Hashes run on a few threads of their own at the lowest CPU
priority, so a burst of sign-ins waits its turn instead of taking the cores
from live delivery, and memory stays bounded (64 MiB per hashing thread)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from crab.errors import ResourceExhausted

T = TypeVar("T")

# At most half the cores, at most 4 hashes at once (their memory adds up).
HASHING_THREADS = min(4, max(1, (os.cpu_count() or 2) // 2))


def _lowest_priority() -> None:
    # Linux: a thread's nice value is its own, and argon2's lane threads,
    # started from this one, inherit it.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Passwords:
    """The hashing queue is bounded: at most `queue` hashes waiting or
    running, at most `queue_per_address` of them for one source address.
    Beyond either, a call is refused at once (ResourceExhausted) instead of
    waiting behind a flood: an attacker at one address holds two places,
    and everyone else's sign-in waits for at most those two hashes."""

    def __init__(self, cheap: bool = False, queue: int = 16, queue_per_address: int = 2) -> None:
        # The cheap profile exists for tests only; production keeps the defaults.
        self._hasher = (
            PasswordHasher.from_parameters(profiles.CHEAPEST) if cheap else PasswordHasher()
        )
        self._dummy: str | None = None
        self._threads = ThreadPoolExecutor(
            HASHING_THREADS, thread_name_prefix="crab-argon2", initializer=_lowest_priority
        )
        self._queue = queue
        self._queue_per_address = queue_per_address
        # Released by the hash's own future when it ends (in its thread), not
        # when its caller stops waiting: a client that resets its call must
        # not free a place while its hash still runs.
        self._lock = threading.Lock()
        self._queued = 0
        self._by_address: dict[str, int] = {}

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def queued(self) -> int:
        """Hashes waiting or running now."""
        return self._queued

    def _admit(self, source: str) -> None:
        with self._lock:
            if self._queued >= self._queue:
                raise ResourceExhausted(
                    "the server is busy checking passwords; try again in a few seconds"
                )
            if self._by_address.get(source, 0) >= self._queue_per_address:
                raise ResourceExhausted(
                    f"too many sign-ins from your address at once (at most "
                    f"{self._queue_per_address}); wait for one to finish"
                )
            self._queued += 1
            self._by_address[source] = self._by_address.get(source, 0) + 1

    def _release(self, source: str) -> None:
        with self._lock:
            self._queued -= 1
            left = self._by_address[source] - 1
            if left:
                self._by_address[source] = left
            else:
                del self._by_address[source]

    async def _run(self, source: str, work: Callable[..., T], *args: str) -> T:
        self._admit(source)
        try:
            done = self._threads.submit(work, *args)
        except BaseException:
            self._release(source)
            raise
        done.add_done_callback(lambda _: self._release(source))
        return await asyncio.wrap_future(done)

    async def hash(self, password: str, source: str = "") -> str:
        """`source`: the caller's address ("" for local calls)."""
        return await self._run(source, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str, source: str = "") -> bool:
        """False on mismatch. With no hash (unknown user) it still spends the
        time of a check, so response time does not reveal who exists."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not-a-real-password", source)
            password_hash = self._dummy
            password = password + "\x00"
        try:
            return await self._run(source, self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
