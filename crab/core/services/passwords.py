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

T = TypeVar("T")

# At most half the cores, at most 4 hashes at once (their memory adds up).
HASHING_THREADS = min(4, max(1, (os.cpu_count() or 2) // 2))


def _lowest_priority() -> None:
    # Linux: a thread's nice value is its own, and argon2's lane threads,
    # started from this one, inherit it.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Passwords:
    def __init__(self, cheap: bool = False) -> None:
        # The cheap profile exists for tests only; production keeps the defaults.
        self._hasher = (
            PasswordHasher.from_parameters(profiles.CHEAPEST) if cheap else PasswordHasher()
        )
        self._dummy: str | None = None
        self._threads = ThreadPoolExecutor(
            HASHING_THREADS, thread_name_prefix="crab-argon2", initializer=_lowest_priority
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False on mismatch. With no hash (unknown user) it still spends the
        time of a check, so response time does not reveal who exists."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not-a-real-password")
            password_hash = self._dummy
            password = password + "\x00"
        try:
            return await self._run(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
