"""argon2id password hashing, run in a thread: one hash takes ~200 ms of
CPU and would otherwise stall every stream on the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, cheap: bool = False) -> None:
        # The cheap profile exists for tests only; production keeps the defaults.
        self._hasher = (
            PasswordHasher.from_parameters(profiles.CHEAPEST) if cheap else PasswordHasher()
        )
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False on mismatch. With no hash (unknown user) it still spends the
        time of a check, so response time does not reveal who exists."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not-a-real-password")
            password_hash = self._dummy
            password = password + "\x00"
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
