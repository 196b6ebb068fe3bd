"""Issue 13's habits, part 2, in the whole client (headless) against a real
server: the input history per chat across a restart, /mute kept, the mouse
(a click on the chat list, the wheel), config.toml's keys."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from crab.core.app import Crab
from crab.tui.config import load_config
from crab.tui.keys import Command, help_lines, keys_for
from crab.tui.saved import InputHistoryFile
from crab.tui.state import Asking, Screen
from tests.integration.test_app_headless import Driver, messages, person

SHIFT_UP = "\x1b[1;2A"
SHIFT_DOWN = "\x1b[1;2B"
UP = "\x1b[A"
ESC = "\x1b"


def click(x: int, y: int) -> str:
    """A left click at column x, row y (0-based), as an SGR mouse report."""
    return f"\x1b[<0;{x + 1};{y + 1}M\x1b[<0;{x + 1};{y + 1}m"


def wheel_up(x: int, y: int) -> str:
    return f"\x1b[<64;{x + 1};{y + 1}M"


async def line_is(who: Driver, text: str) -> None:
    """Waits for the message line to hold `text` (woken by its changes)."""
    buffer = who.app.message_line.buffer
    changed = asyncio.Event()

    def note(_: Any) -> None:
        changed.set()

    buffer.on_text_changed += note
    try:
        async with asyncio.timeout(5):
            while buffer.text != text:
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"the line holds {buffer.text!r}, not {text!r}") from None
    finally:
        buffer.on_text_changed -= note


async def drawn(who: Driver) -> None:
    """Waits for the next paint (a click lands on what was last drawn)."""
    painted = asyncio.Event()

    def note(_: Any) -> None:
        painted.set()

    who.app.app.after_render += note
    who.app.app.invalidate()
    try:
        await asyncio.wait_for(painted.wait(), 5)
    finally:
        who.app.app.after_render -= note


@pytest.mark.timeout(60)
async def test_input_history_is_per_chat_and_survives_a_restart(crab: Crab, tmp_path: Path) -> None:
    folder = tmp_path / "alice"
    server = f"127.0.0.1:{crab.port}"
    async with person(crab, folder) as alice:
        await alice.sign_up("alice")
        await alice.say("/create one")
        await alice.until(lambda s: s.chat(s.active_chat) is not None)
        one = alice.state.active_chat
        await alice.say("said in one")
        await alice.until(lambda s: "said in one" in messages(s) and s.outbox == ())
        await alice.say("/create two")
        await alice.until(lambda s: s.active_chat not in (None, one))
        two = alice.state.active_chat
        await alice.say("said in two")
        await alice.until(lambda s: "said in two" in messages(s) and s.outbox == ())
        alice.type(SHIFT_UP)
        await line_is(alice, "said in two")
        # "/create two" was typed while one was open: not in two's history.
        alice.type(SHIFT_UP + "!")
        await line_is(alice, "said in two!")
        alice.type(SHIFT_DOWN)
        await line_is(alice, "")
        # A /password answer never enters the history.
        await alice.say("/password")
        await alice.until(lambda s: s.asking is Asking.CURRENT_PASSWORD)
        await alice.say("secret-pass")
        await alice.until(lambda s: s.asking is Asking.NEW_PASSWORD)
        alice.type(ESC)
        await alice.until(lambda s: s.asking is None)
    saved = InputHistoryFile(folder)
    assert stat.S_IMODE(os.stat(saved.path).st_mode) == 0o600
    assert "secret-pass" not in saved.path.read_text()
    kept = saved.load(server)
    assert one is not None and two is not None
    assert kept[one] == ["said in one", "/create two"]
    assert kept[two] == ["said in two", "/password"]
    async with person(crab, folder) as alice:
        await alice.until(lambda s: s.screen is Screen.CHATS and len(s.chats) == 2)
        await alice.until(lambda s: s.active_chat is not None and bool(messages(s)))
        chat = alice.state.active_chat
        assert chat is not None
        await drawn(alice)  # the line loads the chat's history as it is drawn
        alice.type(SHIFT_UP)
        await line_is(alice, kept[chat][-1])
        # Up on a line with text walks it too.
        alice.type(UP)
        await line_is(alice, kept[chat][-2])
        alice.type(SHIFT_DOWN + SHIFT_DOWN)
        await line_is(alice, "")


@pytest.mark.timeout(60)
async def test_mute_is_kept_and_the_mouse_opens_chats_and_scrolls(
    crab: Crab, tmp_path: Path
) -> None:
    folder = tmp_path / "alice"
    async with person(crab, folder) as alice:
        await alice.sign_up("alice")
        await alice.say("/create one")
        await alice.until(lambda s: s.chat(s.active_chat) is not None)
        one = alice.state.active_chat
        for i in range(40):
            await alice.say(f"message {i}")
        await alice.until(lambda s: len(messages(s)) == 40 and s.outbox == ())
        await alice.say("/mute")
        await alice.until(lambda s: one in s.muted)
        await alice.say("/create two")
        await alice.until(lambda s: s.active_chat not in (None, one))
        # The chat list: row 0 is its title, then the chats, newest first.
        await alice.until(lambda s: [c.id for c in s.chats][1] == one)
        await drawn(alice)
        alice.type(click(4, 2))
        await alice.until(lambda s: s.active_chat == one)
        await drawn(alice)
        alice.type(wheel_up(50, 5))
        await alice.until(lambda s: s.scroll == 3)
    async with person(crab, folder) as alice:
        await alice.until(lambda s: s.screen is Screen.CHATS and len(s.chats) == 2)
        assert one in alice.state.muted


@pytest.mark.timeout(60)
async def test_config_keys_are_bound_and_the_help_names_them(crab: Crab, tmp_path: Path) -> None:
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "config.toml").write_text('[keys]\nnext_chat = "f7"\n')
    async with person(crab, folder, config=load_config(folder)) as alice:
        await alice.sign_up("alice")
        await alice.say("/create one")
        await alice.until(lambda s: s.chat(s.active_chat) is not None)
        await alice.say("/create two")
        await alice.until(lambda s: len(s.chats) == 2 and s.active_chat == s.chats[0].id)
        first = alice.state.active_chat
        alice.type("\x1b[18~")  # F7
        await alice.until(lambda s: s.active_chat != first)
        assert any(row.startswith("  F7 ") and "next chat" in row for row in help_lines())
    # Once it ends, the table is the default again (for the next app here).
    assert keys_for(Command.NEXT_CHAT) == ("c-n",)
