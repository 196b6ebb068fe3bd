"""Message search, the pure part: the query's words, which of them a text
holds and where (the marks), the order of hits, and the page token.

The database only finds candidates (crab/core/storage/search.py); what
counts as a match, how hits are ranked and where the marks go is decided
here, the same way on SQLite and PostgreSQL. Ranking uses nothing but the
hit itself (how many of the query's words it holds, then newer first): no
corpus-wide statistics, so the order says nothing about other chats."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from crab.core.domain.models import Message
from crab.errors import InvalidArgument

MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 10
# The last word matches as a prefix ("deplo" finds "deploy") from this length:
# a shorter prefix names too many words to be worth reading.
MIN_PREFIX_CHARS = 3
# Letters and digits; everything else separates words, as in SQLite FTS5's
# unicode61 tokenizer (underscore, punctuation, quotes, operators).
WORD = re.compile(r"[^\W_]+")
TOKEN_VERSION = "s1"


@dataclass(frozen=True, slots=True)
class Query:
    words: tuple[str, ...]  # lower-cased, distinct, in the order typed
    prefix: bool  # the last word also matches words it begins

    def matches(self, token: str) -> int | None:
        """The index of the query word `token` (lower-cased) is, or None."""
        for index, word in enumerate(self.words):
            if token == word:
                return index
        last = len(self.words) - 1
        if self.prefix and token.startswith(self.words[last]):
            return last
        return None


@dataclass(frozen=True, slots=True)
class Hit:
    message: Message
    marks: tuple[tuple[int, int], ...]  # [start, end) in characters of message.text
    score: int  # how many of the query's words the text holds
    row_id: int  # storage order: larger is newer


@dataclass(frozen=True, slots=True)
class Results:
    hits: list[Hit]
    next_page_token: str  # "": no more


def parse_query(text: str) -> Query:
    """The words to look for. User text never reaches the database as query
    syntax: only these words do, each quoted there (storage/search.py)."""
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"search text must be at most {MAX_QUERY_CHARS} characters")
    words = tuple(dict.fromkeys(w.lower() for w in WORD.findall(text)))
    if not words:
        raise InvalidArgument("search text must hold a word (letters or digits)")
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidArgument(f"search text must be at most {MAX_QUERY_WORDS} words")
    return Query(words, prefix=len(words[-1]) >= MIN_PREFIX_CHARS)


def hit(query: Query, message: Message, row_id: int) -> Hit | None:
    """The message as a hit (its marks and score), or None if it holds
    none of the words (the database's tokenizer may differ slightly)."""
    marks: list[tuple[int, int]] = []
    found: set[int] = set()
    for match in WORD.finditer(message.text):
        index = query.matches(match.group().lower())
        if index is not None:
            found.add(index)
            marks.append(match.span())
    if not found:
        return None
    return Hit(message, tuple(marks), len(found), row_id)


def rank(hits: list[Hit]) -> list[Hit]:
    """Holding more of the words first (all of them first), then newer first."""
    return sorted(hits, key=lambda h: (-h.score, -h.row_id))


def page(query: Query, chat_id: int, ranked: list[Hit], token: str, limit: int) -> Results:
    """The page after `token` (the last hit of the previous page) of `ranked`."""
    if token:
        score, row_id = read_token(query, chat_id, token)
        ranked = [h for h in ranked if (h.score, h.row_id) < (score, row_id)]
    hits = ranked[:limit]
    more = len(ranked) > limit
    return Results(hits, make_token(query, chat_id, hits[-1]) if more else "")


def _digest(query: Query, chat_id: int) -> str:
    """Ties a token to its search: another search's token is refused."""
    what = f"{chat_id}\0{query.prefix}\0" + "\0".join(query.words)
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def make_token(query: Query, chat_id: int, last: Hit) -> str:
    raw = f"{TOKEN_VERSION}:{last.score}:{last.row_id}:{_digest(query, chat_id)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_token(query: Query, chat_id: int, token: str) -> tuple[int, int]:
    """(score, row id) of the previous page's last hit, or InvalidArgument."""
    bad = InvalidArgument("page_token is not one this search gave")
    if len(token) > 200:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    parts = raw.split(":")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION or parts[3] != _digest(query, chat_id):
        raise bad
    score, row_id = parts[1], parts[2]
    if not (score.isdigit() and row_id.isdigit() and len(score) <= 3 and len(row_id) <= 19):
        raise bad
    return int(score), int(row_id)
