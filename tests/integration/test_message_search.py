"""Message search through a real server and real clients: only my chats
(now), ranked as docs/conversation.md says, marked, paged; garbage refused.
`make test-postgres` (CRAB_TEST_DATABASE=postgresql) runs it on PostgreSQL.

Deleting a message is another helper's command: until it lands, the
tombstone is written directly through the storage layer, as the delete
does (deleted_at set, text emptied)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from grpclib import GRPCError
from grpclib.const import Status
from sqlalchemy.engine import Connection

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.core.clock import now
from crab.core.storage.tables import messages
from crab.proto.crab import v1 as pb
from tests.helpers.chats import create_room, join
from tests.helpers.server import ClientFactory


async def say(client: CrabClient, chat_id: int, *texts: str) -> None:
    """Sends each text and waits for its ack (so it is stored, in order)."""
    async with client.session() as live:
        for text in texts:
            sent = await live.send(chat_id, text)
            await live.wait_for(
                lambda f, c=sent: f.ack is not None and f.ack.client_message_id == c
            )


def texts(found: pb.SearchResults) -> list[str]:
    return [hit.message.text for hit in found.hits]


def marked(hit: pb.SearchHit) -> list[str]:
    return [hit.message.text[span.start : span.end] for span in hit.marks]


async def status_of(client: CrabClient, query: str, **kwargs: object) -> Status:
    with pytest.raises(GRPCError) as error:
        await client.search_messages(query, **kwargs)  # type: ignore[arg-type]
    return error.value.status


@pytest.fixture
async def scene(connect: ClientFactory) -> tuple[CrabClient, CrabClient, CrabClient, pb.Chat]:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    team = await create_room(alice, "team")
    await join(alice, bob, team)
    return alice, bob, carol, team


async def test_finds_my_messages_ranked_and_marked(scene: tuple[CrabClient, ...]) -> None:
    alice, bob, _, team = scene  # type: ignore[misc]
    await say(alice, team.id, "deploy the server tonight", "the SERVER is down", "lunch?")
    await say(bob, team.id, "tonight we deploy: server, then client", "deployment notes")
    found = await bob.search_messages("server deploy")
    # All the words first (newer first), then some of them (newer first);
    # "deploy" is the last word: a prefix, so "deployment" holds it.
    assert texts(found) == [
        "tonight we deploy: server, then client",
        "deploy the server tonight",
        "deployment notes",
        "the SERVER is down",
    ]
    assert marked(found.hits[0]) == ["deploy", "server"]
    assert marked(found.hits[2]) == ["deployment"]
    assert marked(found.hits[3]) == ["SERVER"]
    assert found.hits[0].message.sender.id == bob.user.id
    assert found.hits[0].message.chat_id == team.id
    assert found.next_page_token == ""
    # One chat only; a word that is nowhere.
    assert texts(await alice.search_messages("lunch", chat_id=team.id)) == ["lunch?"]
    assert (await alice.search_messages("nowhere")).hits == []


async def test_never_another_chats_text(scene: tuple[CrabClient, ...]) -> None:
    alice, bob, carol, team = scene  # type: ignore[misc]
    await say(alice, team.id, "the plan for friday", "plan b")
    before = await bob.search_messages("plan zanzibar")
    private = await create_room(alice, "private")
    await say(alice, private.id, "zanzibar plan", "zanzibar plan again", "plan plan plan")
    # Alice finds her private room; bob and carol do not, and bob's results
    # (count, order, marks) are exactly what they were before it existed.
    assert len((await alice.search_messages("zanzibar")).hits) == 2
    assert (await bob.search_messages("zanzibar")).hits == []
    assert (await carol.search_messages("zanzibar plan")).hits == []
    assert await bob.search_messages("plan zanzibar") == before
    assert await status_of(bob, "zanzibar", chat_id=private.id) == Status.NOT_FOUND
    assert await status_of(bob, "zanzibar", chat_id=10**9) == Status.NOT_FOUND


async def test_a_chat_i_left_is_not_searched(scene: tuple[CrabClient, ...]) -> None:
    alice, bob, _, team = scene  # type: ignore[misc]
    await say(alice, team.id, "quarterly numbers attached")
    assert len((await bob.search_messages("quarterly")).hits) == 1
    await bob.chats.leave_chat(pb.ChatRequest(chat_id=team.id), metadata=bob.metadata)
    assert (await bob.search_messages("quarterly")).hits == []
    assert await status_of(bob, "quarterly", chat_id=team.id) == Status.NOT_FOUND


async def test_deleted_and_edited_text_is_not_found(
    crab: Crab, scene: tuple[CrabClient, ...]
) -> None:
    alice, bob, _, team = scene  # type: ignore[misc]
    await say(alice, team.id, "secret password hunter2", "keep this hunter3")

    def tombstone_and_edit(conn: Connection) -> None:
        # What DeleteMessage and EditMessage store (another helper builds them).
        row = messages.c
        conn.execute(
            sa.update(messages)
            .where(row.chat_id == team.id, row.seq == 1)
            .values(text="", deleted_at=now())
        )
        conn.execute(
            sa.update(messages)
            .where(row.chat_id == team.id, row.seq == 2)
            .values(text="keep this tidy", edited_at=now())
        )

    await crab.database.write(tombstone_and_edit)
    assert (await bob.search_messages("hunter2")).hits == []
    assert (await bob.search_messages("secret password")).hits == []
    assert (await bob.search_messages("hunter3")).hits == []
    assert texts(await bob.search_messages("tidy")) == ["keep this tidy"]


async def test_pages(scene: tuple[CrabClient, ...]) -> None:
    alice, bob, _, team = scene  # type: ignore[misc]
    await say(alice, team.id, *[f"report number {i}" for i in range(7)], "report report")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        found = await bob.search_messages("report", limit=3, page_token=token)
        seen.extend(texts(found))
        pages += 1
        token = found.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == ["report report", *[f"report number {i}" for i in range(6, -1, -1)]]
    # A token belongs to its search: another query's or chat's is refused.
    first = await bob.search_messages("report", limit=3)
    assert await status_of(bob, "numbers", page_token=first.next_page_token) == (
        Status.INVALID_ARGUMENT
    )
    assert await status_of(bob, "report", chat_id=team.id, page_token=first.next_page_token) == (
        Status.INVALID_ARGUMENT
    )


GARBAGE_TOKENS = ["x", "!!!", "czE6MTox", "czE6OTk6OTk6MDAwMDAwMDAwMDAwMDAwMA", "é" * 50, "a" * 500]


@pytest.mark.parametrize("token", GARBAGE_TOKENS)
async def test_garbage_page_tokens(scene: tuple[CrabClient, ...], token: str) -> None:
    _, bob, _, _ = scene  # type: ignore[misc]
    assert await status_of(bob, "report", page_token=token) == Status.INVALID_ARGUMENT


# Query syntax of FTS5 and tsquery is only ever text to look for.
SYNTAX = ['"plan', "plan*", "NEAR(plan friday)", "plan OR x", "-plan", "plan:*", "text:plan"]
SYNTAX += ["(plan", "plan)", "plan & !x", "plan | x", "'plan'", "plan\\", "^plan", "plan +x"]


@pytest.mark.parametrize("query", SYNTAX)
async def test_query_syntax_is_only_words(scene: tuple[CrabClient, ...], query: str) -> None:
    alice, bob, _, team = scene  # type: ignore[misc]
    await say(alice, team.id, "the plan for friday")
    found = await bob.search_messages(query)
    assert texts(found) == ["the plan for friday"]


async def test_unicode_words(scene: tuple[CrabClient, ...]) -> None:
    alice, bob, _, team = scene  # type: ignore[misc]
    await say(alice, team.id, "Привет мир, café crème", "日本語 テキスト")
    found = await bob.search_messages("привет")
    assert texts(found) == ["Привет мир, café crème"] and marked(found.hits[0]) == ["Привет"]
    assert marked((await bob.search_messages("café")).hits[0]) == ["café"]


@pytest.mark.parametrize(
    "query,kwargs",
    [
        ("", {}),
        ("   ", {}),
        ('"', {}),
        ('"*"()-:', {}),  # no word in it
        ("a" * 201, {}),
        (" ".join(f"w{i}" for i in range(11)), {}),
        ("plan", {"limit": 51}),
    ],
)
async def test_bad_queries_are_invalid(
    scene: tuple[CrabClient, ...], query: str, kwargs: dict[str, object]
) -> None:
    _, bob, _, _ = scene  # type: ignore[misc]
    assert await status_of(bob, query, **kwargs) == Status.INVALID_ARGUMENT


async def test_searches_are_rate_limited(crab: Crab, scene: tuple[CrabClient, ...]) -> None:
    _, bob, carol, _ = scene  # type: ignore[misc]
    burst = crab.settings.limits.searches_per_user.count
    for _ in range(burst):
        await bob.search_messages("plan")
    assert await status_of(bob, "plan") == Status.RESOURCE_EXHAUSTED
    await carol.search_messages("plan")  # per user
