"""Finding people: one user by id, or a search as you type."""

from __future__ import annotations

from crab.config import Limits
from crab.core.domain.models import User
from crab.core.storage import users
from crab.core.storage.database import Database
from crab.errors import InvalidArgument, NotFound


class People:
    def __init__(self, database: Database, limits: Limits) -> None:
        self._database = database
        self._limits = limits

    async def get(self, user_id: int) -> User:
        user = await self._database.read(users.by_id, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    async def search(self, query: str, limit: int) -> list[User]:
        query = query.strip()
        if len(query) > 64:
            raise InvalidArgument("search text must be at most 64 characters")
        if not query:
            return []
        limit = min(limit or self._limits.search_limit_default, self._limits.search_limit_max)
        return await self._database.read(users.search, query, limit)
