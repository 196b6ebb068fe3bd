"""Issue 13's habits in the whole client (headless, drawn at a terminal's
size) against a real server: the completion menu and a command's usage,
Tab completing nicks, Alt+N and Alt+arrows switching chats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from crab.core.app import Crab
from crab.tui.state import AppState, Focus
from tests.integration.test_app_headless import F2, Driver
from tests.integration.test_app_headless_views import person, screen

TAB = "\t"
ESC = "\x1b"
ALT_LEFT = "\x1b[1;3D"
ALT_RIGHT = "\x1b[1;3C"


async def drawn(driver: Driver, check: Callable[[list[str]], bool]) -> list[str]:
    """The screen once it passes `check`: completion runs in the background,
    with no state change to wait for, so the screen is looked at again."""
    for _ in range(500):
        rows = screen(driver)
        if check(rows):
            return rows
        await asyncio.sleep(0.01)
    raise AssertionError("\n".join(screen(driver)))


async def line_is(driver: Driver, text: str) -> None:
    line = driver.app.message_line
    for _ in range(500):
        if line.text == text:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the line holds {line.text!r}, not {text!r}")


def chat_name(state: AppState) -> str:
    chat = state.chat(state.active_chat)
    return chat.name if chat else ""


@pytest.mark.timeout(60)
async def test_the_completion_menu_shows_commands_with_their_help(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice", 100, 30) as alice:
        await alice.sign_up("alice")
        await alice.say("/create general")
        await alice.until(lambda s: chat_name(s) == "general")
        alice.type("/inv")
        rows = await drawn(alice, lambda rows: any("invite someone" in r for r in rows))
        # Both commands that fit, each with its usage and help.
        assert any("/invite USER  invite someone to the open room" in r for r in rows), rows
        assert any("/invites      show pending invites" in r for r in rows), rows
        # Esc closes the menu and leaves the line as it was.
        alice.type(ESC)
        await drawn(alice, lambda rows: not any("invite someone" in r for r in rows))
        assert alice.app.message_line.text == "/inv" and alice.state.focus is Focus.INPUT
        # The command named: its usage and help above the line.
        alice.type("ite ")
        await line_is(alice, "/invite ")
        rows = await drawn(alice, lambda rows: any("/invite USER  invite" in r for r in rows))
        assert rows[-3].strip().startswith("/invite USER"), rows[-4:]


@pytest.mark.timeout(60)
async def test_tab_completes_the_nick_of_a_member(crab: Crab, tmp_path: Path) -> None:
    async with (
        person(crab, tmp_path / "alice", 100, 30) as alice,
        person(crab, tmp_path / "bob", 100, 30) as bob,
    ):
        await alice.sign_up("alice")
        await bob.sign_up("bobby")
        await alice.say("/create general")
        await alice.until(lambda s: chat_name(s) == "general")
        await alice.say("/invite bobby")
        await bob.until(lambda s: len(s.invites) == 1)
        bob.type(F2)
        await bob.until(lambda s: s.focus is Focus.INVITES)
        await bob.say("/accept")
        await alice.until(
            lambda s: any(p.username == "bobby" for p in s.history(s.active_chat).members)
        )
        alice.type("bo" + TAB)
        await line_is(alice, "bobby: ")  # at the start of the line, IRC's "nick: "
        alice.type("hi @b" + TAB)
        await line_is(alice, "bobby: hi @bobby")
        alice.type("\r")
        await bob.until(
            lambda s: [x.text for x in s.history(s.active_chat).lines] == ["bobby: hi @bobby"]
        )


@pytest.mark.timeout(60)
async def test_alt_keys_switch_chats_and_type_nothing(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "alice", 100, 30) as alice:
        await alice.sign_up("alice")
        for name in ("one", "two", "three"):
            await alice.say(f"/create {name}")
            await alice.until(lambda s, name=name: chat_name(s) == name)
        rows = screen(alice)
        assert any(r.startswith("1 # one") for r in rows), rows
        assert any(r.startswith("3 # three") for r in rows), rows
        alice.type("\x1b1")  # Alt+1
        await alice.until(lambda s: chat_name(s) == "one")
        alice.type(ALT_RIGHT)
        await alice.until(lambda s: chat_name(s) == "two")
        alice.type("\x1b3")
        await alice.until(lambda s: chat_name(s) == "three")
        alice.type(ALT_LEFT)
        await alice.until(lambda s: chat_name(s) == "two")
        assert alice.app.message_line.text == ""
        # Esc alone still acts at once.
        alice.type(F2)
        await alice.until(lambda s: s.focus is Focus.INVITES)
        alice.type(ESC)
        await alice.until(lambda s: s.focus is Focus.INPUT)
        alice.type("x")
        await line_is(alice, "x")
