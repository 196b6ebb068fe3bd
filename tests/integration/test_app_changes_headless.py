"""Edits, deletes, replies and reactions in the whole client, headless, by
keys and slash commands, against a real in-process server."""

from __future__ import annotations

from pathlib import Path

import pytest

from crab.core.app import Crab
from crab.tui.state import AppState, Focus, Line, Reaction
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import status
from tests.helpers.tui import rows_text
from tests.integration.test_app_headless import F2, Driver, messages, person

CTRL_UP = "\x1b[1;5A"
UP = "\x1b[A"
DOWN = "\x1b[B"
ESC = "\x1b"
F5 = "\x1b[15~"


def lines(state: AppState) -> tuple[Line, ...]:
    return state.history(state.active_chat).lines


def by_text(state: AppState, text: str) -> Line | None:
    return next((x for x in lines(state) if x.text == text), None)


async def meet(alice: Driver, bob: Driver) -> None:
    """alice and bob, signed up, in alice's room `general`."""
    await alice.sign_up("alice")
    await bob.sign_up("bob")
    await alice.say("/create general")
    await alice.until(lambda s: s.chat(s.active_chat) is not None)
    await alice.say("/invite bob")
    await bob.until(lambda s: len(s.invites) == 1)
    bob.type(F2)
    await bob.until(lambda s: s.focus is Focus.INVITES)
    await bob.say("/accept")
    await bob.until(lambda s: any(c.name == "general" for c in s.chats))
    await alice.until(lambda s: "bob accepted" in s.notice)


@pytest.mark.timeout(60)
async def test_keys_select_a_message_and_start_an_edit_or_a_reply(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await meet(alice, bob)
        await alice.say("first")
        await bob.until(lambda s: "first" in messages(s))
        await bob.say("hello alice")
        await alice.until(lambda s: messages(s) == ["first", "hello alice"])
        await alice.until(lambda s: s.outbox == ())

        # Up on the empty line: my last message, on the line, to edit.
        alice.type(UP)
        state = await alice.until(lambda s: s.editing != 0)
        first = by_text(state, "first")
        assert first is not None and state.editing == first.id
        await alice.until(lambda s: alice.app.message_line.text == "first")
        alice.type(ESC)
        await alice.until(lambda s: s.editing == 0)
        assert alice.app.message_line.text == ""

        # Ctrl+Up selects the newest message, Up the one before, r replies.
        alice.type(CTRL_UP)
        state = await alice.until(lambda s: s.focus is Focus.MESSAGES)
        newest = by_text(state, "hello alice")
        assert newest is not None and state.selected == newest.id
        alice.type(UP)
        await alice.until(lambda s: s.selected == first.id)
        alice.type(DOWN)
        await alice.until(lambda s: s.selected == newest.id)
        # bob's message: not mine to edit.
        alice.type("e")
        state = await alice.until(lambda s: "own" in s.notice)
        assert state.editing == 0
        alice.type("r")
        state = await alice.until(lambda s: s.replying == newest.id)
        assert state.focus is Focus.INPUT and state.selected == 0
        alice.type(ESC)
        await alice.until(lambda s: s.replying == 0)

        # F5 selects too; y copies (no clipboard here: the text is shown).
        alice.type(F5)
        await alice.until(lambda s: s.focus is Focus.MESSAGES)
        alice.type("y")
        await alice.until(lambda s: "hello alice" in s.notice)


@pytest.mark.timeout(60)
async def test_a_refused_change_is_said_in_the_status_line(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await meet(alice, bob)
        await alice.say("short")
        await alice.until(lambda s: s.outbox == () and "short" in messages(s))
        notice = alice.state.notice
        await alice.say("/edit " + "x" * 5000)  # over the server's message limit
        state = await alice.until(lambda s: s.notice != notice and s.notice != "")
        assert messages(state) == ["short"]
        assert alice.app.app.is_running


def shown(driver: Driver) -> list[str]:
    """The message pane's rows, as text."""
    return rows_text(visible_rows(driver.state, 100, 40))


@pytest.mark.timeout(90)
async def test_edit_react_reply_and_delete_are_drawn_in_the_other_client(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await meet(alice, bob)
        await alice.say("first")
        await bob.until(lambda s: "first" in messages(s))
        await alice.until(lambda s: s.outbox == ())

        # alice edits by Up on the empty line: her text is on the line.
        alice.type(UP)
        await alice.until(lambda s: alice.app.message_line.text == "first")
        await alice.say(" words")
        state = await bob.until(lambda s: messages(s) == ["first words"])
        assert lines(state)[0].edited_at is not None
        assert any(r.endswith("first words (edited)") for r in shown(bob))

        # bob reacts on the selected message: + then the emoji.
        bob.type(CTRL_UP)
        await bob.until(lambda s: s.focus is Focus.MESSAGES)
        bob.type("+")
        await bob.until(lambda s: bob.app.message_line.text == "/react ")
        await bob.say("👍")
        me_bob = bob.state.me
        assert me_bob is not None
        state = await alice.until(
            lambda s: bool(lines(s)) and lines(s)[0].reactions == (Reaction("👍", (me_bob.id,)),)
        )
        assert any(r.strip() == "👍 1" for r in shown(alice))
        alice.type(CTRL_UP)
        await alice.until(lambda s: s.selected == lines(s)[0].id)
        assert "👍 bob" in "".join(t for _, t in status(alice.state))
        alice.type(ESC)
        await alice.until(lambda s: s.focus is Focus.INPUT)

        # bob replies to it: r, then the text.
        bob.type(CTRL_UP)
        await bob.until(lambda s: s.focus is Focus.MESSAGES)
        bob.type("r")
        await bob.until(lambda s: s.replying != 0)
        await bob.say("agreed")
        first_id = lines(alice.state)[0].id
        state = await alice.until(lambda s: messages(s)[-1:] == ["agreed"])
        assert lines(state)[-1].reply_to_id == first_id
        assert "↳ alice: first words" in [r.strip() for r in shown(alice)]

        # alice deletes her message: bob sees a tombstone, and so does the quote.
        await alice.say("/delete")
        state = await bob.until(lambda s: lines(s)[0].deleted)
        rows = [r.strip() for r in shown(bob)]
        assert "↳ deleted message" in rows and any(r.endswith("message deleted") for r in rows)
        assert "first words" not in " ".join(rows)

        # Enter on the reply jumps to what it quotes.
        bob.type(CTRL_UP)
        await bob.until(lambda s: s.focus is Focus.MESSAGES)
        bob.type("\r")
        await bob.until(lambda s: s.selected == first_id)


@pytest.mark.timeout(90)
async def test_changes_made_while_away_arrive_on_reconnect(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await meet(alice, bob)
        await alice.say("one")
        await alice.say("two")
        await bob.until(lambda s: messages(s) == ["one", "two"])
        await alice.until(lambda s: s.outbox == ())
        runner = bob.app.runner
        assert runner is not None
        runner.link.stop()  # bob is away

        await alice.say("/edit two, edited")
        alice.type(CTRL_UP)
        await alice.until(lambda s: s.focus is Focus.MESSAGES)
        alice.type(UP)
        await alice.until(lambda s: s.selected == lines(s)[0].id)
        alice.type("+")
        await alice.until(lambda s: alice.app.message_line.text == "/react ")
        await alice.say("🎉")
        await alice.until(
            lambda s: messages(s) == ["one", "two, edited"] and bool(lines(s)[0].reactions)
        )
        assert messages(bob.state) == ["one", "two"]  # away: nothing came

        runner.link.start()  # back: the Resume cursor asks for the changes
        state = await bob.until(
            lambda s: messages(s) == ["one", "two, edited"] and bool(lines(s)[0].reactions)
        )
        assert lines(state)[0].reactions[0].emoji == "🎉"
        room = state.chat(state.active_chat)
        assert room is not None and room.last_change_seq >= 2
