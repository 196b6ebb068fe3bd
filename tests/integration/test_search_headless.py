"""`/search TEXT` in the whole client, headless, against a real server: the
hits list (chat, sender, marked words), Up/Down, Enter opens the chat at
the hit with the messages around it loaded, Esc closes; F3 still finds
people."""

from __future__ import annotations

from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.tui.state import Focus
from tests.integration.test_app_headless import messages, person

ESC = "\x1b"
UP, DOWN = "\x1b[A", "\x1b[B"
F3 = "\x1bOR"


async def say_as(crab: Crab, username: str, chat_id: int, texts: list[str]) -> None:
    client = CrabClient("127.0.0.1", crab.port)
    try:
        await client.sign_in(username, "secret-pass")
        async with client.session() as live:
            for text in texts:
                sent = await live.send(chat_id, text)
                await live.wait_for(
                    lambda f, c=sent: f.ack is not None and f.ack.client_message_id == c
                )
    finally:
        client.close()


@pytest.mark.timeout(60)
async def test_search_lists_marked_hits_and_enter_opens_the_chat_there(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice:
        await alice.sign_up("alice")
        await alice.say("/create general")
        state = await alice.until(lambda s: s.chat(s.active_chat) is not None)
        general = state.active_chat
        assert general is not None
        filler = [f"filler {n}" for n in range(40)]
        texts = ["the needle is here", *filler, "another needle later", *filler]
        await say_as(crab, "alice", general, texts)
        await alice.say("/create other")
        await alice.until(lambda s: s.chat(s.active_chat) is not None and s.active_chat != general)

        await alice.say("/search needle")
        state = await alice.until(lambda s: s.focus is Focus.FOUND and len(s.found.hits) == 2)
        first, second = state.found.hits
        assert first.line.text == "another needle later" and first.chat_name == "general"
        assert first.line.text[slice(*first.marks[0])] == "needle"
        assert second.line.text == "the needle is here" and second.line.sender.username == "alice"

        alice.type(DOWN)
        await alice.until(lambda s: s.found.selected == 1)
        alice.type(UP + DOWN)
        await alice.until(lambda s: s.found.selected == 1)
        alice.type("\r")  # Enter: open the chat at "the needle is here"
        state = await alice.until(
            lambda s: (
                s.focus is Focus.INPUT
                and s.active_chat == general
                and "the needle is here" in messages(s)
                and s.scroll > 0
            )
        )
        lines = state.history(general).lines
        hit = next(line for line in lines if line.text == "the needle is here")
        below = sum(1 for line in lines if line.id > hit.id)
        assert state.scroll == below - 3  # the hit near the bottom of the view

        # A search that finds nothing, then Esc back to the message line.
        await alice.say("/search zanzibar")
        await alice.until(lambda s: s.focus is Focus.FOUND and not s.found.searching)
        assert alice.state.found.hits == ()
        alice.type(ESC)
        await alice.until(lambda s: s.focus is Focus.INPUT)

        # People search is still F3 (and /people).
        alice.type(F3)
        await alice.until(lambda s: s.focus is Focus.SEARCH)
        alice.type("ali")
        await alice.until(lambda s: [p.username for p in s.search.results] == ["alice"])
