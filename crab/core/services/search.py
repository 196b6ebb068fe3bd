"""Message search: a read (no broker command). Candidates come from the
full-text index in the caller's chats only; ranking, marks and paging are
the domain's (crab/core/domain/search.py, docs/conversation.md)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.domain import search
from crab.core.domain.models import Caller
from crab.core.services.rate_limit import RateLimiter
from crab.core.storage import chats
from crab.core.storage import search as index
from crab.core.storage.database import Database
from crab.errors import InvalidArgument, NotFound

# The newest messages holding all the words, and the newest holding any, in
# the caller's chats: what one search ranks (so its cost is bounded).
CANDIDATES = 200


class MessageSearch:
    def __init__(self, database: Database, limits: Limits) -> None:
        self._database = database
        self._limits = limits
        self._searches = RateLimiter.of(limits.searches_per_user, "message searches")

    async def find(
        self, caller: Caller, text: str, chat_id: int, limit: int, page_token: str
    ) -> search.Results:
        """`chat_id` 0: every chat the caller is a member of now."""
        query = search.parse_query(text)
        if limit > self._limits.search_limit_max:
            raise InvalidArgument(f"limit must be at most {self._limits.search_limit_max}")
        if chat_id < 0:
            raise NotFound(f"chat {chat_id} not found")
        limit = limit or self._limits.search_limit_default
        if page_token:
            search.read_token(query, chat_id, page_token)  # garbage: refused before any work
        self._searches.take(caller.user_id)
        ranked = await self._database.read(_ranked, caller.user_id, chat_id, query)
        return search.page(query, chat_id, ranked, page_token, limit)


def _ranked(conn: Connection, user_id: int, chat_id: int, query: search.Query) -> list[search.Hit]:
    if chat_id and chats.get_as_member(conn, chat_id, user_id) is None:
        raise NotFound(f"chat {chat_id} not found")  # as for a chat that does not exist
    found = dict(index.candidates(conn, user_id, chat_id, query, True, CANDIDATES))
    if len(query.words) > 1:
        # Any word: hits holding some of the words, ranked after those holding all.
        found.update(index.candidates(conn, user_id, chat_id, query, False, CANDIDATES))
    hits = (search.hit(query, message, row_id) for row_id, message in found.items())
    return search.rank([h for h in hits if h is not None])
