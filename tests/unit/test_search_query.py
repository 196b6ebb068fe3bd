"""The pure part of message search: words, marks, ranking, page tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crab.core.domain import search
from crab.core.domain.models import Message, User
from crab.core.storage.search import fts5_match, tsquery
from crab.errors import InvalidArgument

ALICE = User(1, "alice", "Alice")


def message(text: str, seq: int = 1) -> Message:
    return Message(1, seq, ALICE, text, datetime(2026, 1, 1, tzinfo=UTC), f"c{seq}")


def test_words_are_letters_and_digits_lowercased_distinct() -> None:
    query = search.parse_query('NEAR("Deploy" OR x*) -server: deploy_v2 ')
    assert query.words == ("near", "deploy", "or", "x", "server", "v2")
    assert not query.prefix  # "v2": too short to be a prefix
    assert search.parse_query("deplo").prefix


@pytest.mark.parametrize("text", ["", "  ", '"*()-:', "a" * 201, " ".join("abcdefghijk")])
def test_bad_queries(text: str) -> None:
    with pytest.raises(InvalidArgument):
        search.parse_query(text)


def test_database_queries_quote_every_word() -> None:
    query = search.parse_query("plan OR near deplo")
    assert fts5_match(query, True) == '"plan" AND "or" AND "near" AND "deplo"*'
    assert fts5_match(query, False) == '"plan" OR "or" OR "near" OR "deplo"*'
    assert tsquery(query, True) == "'plan' & 'or' & 'near' & 'deplo':*"


def test_marks_score_and_rank() -> None:
    query = search.parse_query("server deplo")
    both = search.hit(query, message("Deployed the SERVER, deploying again", 1), 10)
    one = search.hit(query, message("the server", 2), 20)
    assert search.hit(query, message("nothing here", 3), 30) is None
    assert both is not None and one is not None
    assert both.marks == ((0, 8), (13, 19), (21, 30)) and both.score == 2
    assert one.score == 1
    newer_both = search.hit(query, message("server deploy", 4), 40)
    assert newer_both is not None
    assert search.rank([one, both, newer_both]) == [newer_both, both, one]


def test_page_tokens_continue_and_refuse_others() -> None:
    query = search.parse_query("plan")
    hits = [h for n in range(5) if (h := search.hit(query, message("plan", n), n))]
    ranked = search.rank(hits)
    first = search.page(query, 0, ranked, "", 2)
    assert [h.row_id for h in first.hits] == [4, 3] and first.next_page_token
    second = search.page(query, 0, ranked, first.next_page_token, 2)
    third = search.page(query, 0, ranked, second.next_page_token, 2)
    assert [h.row_id for h in second.hits + third.hits] == [2, 1, 0]
    assert third.next_page_token == ""
    for other_query, chat in ((search.parse_query("plans"), 0), (query, 7)):
        with pytest.raises(InvalidArgument):
            search.page(other_query, chat, ranked, first.next_page_token, 2)
