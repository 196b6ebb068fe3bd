"""Issue 13's habits, part 2, in the whole client (headless) against a real
server: the input history per chat across a restart, OSC notifications and
/mute, the mouse (a click on the chat list, the wheel), config.toml's keys."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.tui.actions import OpenChat
from crab.tui.app import ChatApp
from crab.tui.config import ChatConfig, load_config
from crab.tui.keys import KEYS, Command, help_lines, keys_for
from crab.tui.saved import InputHistoryFile
from crab.tui.state import Asking, Notify, Screen
from tests.integration.test_app_changes_headless import meet
from tests.integration.test_app_headless import Driver, messages, person
from tests.integration.test_mentions_headless import say_all

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
        # The line reloads its history as it is drawn (prompt_toolkit's way).
        await drawn(alice)
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
        # The chat list: row 0 is its title, then the chats in the order they
        # began (the default fixed order): one on row 1.
        await alice.until(lambda s: bool(s.chats) and s.chats[0].id == one)
        await drawn(alice)
        alice.type(click(4, 1))
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
        await alice.until(lambda s: len(s.chats) == 2 and s.active_chat == s.chats[-1].id)
        first = alice.state.active_chat
        alice.type("\x1b[18~")  # F7
        await alice.until(lambda s: s.active_chat != first)
        assert any(row.startswith("  F7 ") and "next chat" in row for row in help_lines())
    # Once it ends, the table is the default again (for the next app here).
    default = tuple(k for b in KEYS if b.command is Command.NEXT_CHAT for k in b.keys)
    assert keys_for(Command.NEXT_CHAT) == default == ("c-n", "m-right", "m-down")


class Terminal(DummyOutput):
    """prompt_toolkit's DummyOutput, keeping the OSC notifications written."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []
        self.noted = asyncio.Event()

    def write_raw(self, data: str) -> None:
        if data.startswith("\x1b]"):
            self.notes.append(data)
            self.noted.set()


@pytest.mark.timeout(90)
async def test_what_rings_also_notifies_and_a_muted_chat_does_neither(
    crab: Crab, tmp_path: Path
) -> None:
    terminal = Terminal()
    config = ChatConfig(notify=Notify.OSC777)
    async with person(crab, tmp_path / "alice") as alice:
        with create_pipe_input() as keys:
            with create_app_session(input=keys, output=terminal):
                app = ChatApp(
                    f"127.0.0.1:{crab.port}",
                    tmp_path / "bob",
                    input=keys,
                    output=terminal,
                    config=config,
                )
                task = asyncio.create_task(app.run())
            bob = Driver(app, keys)
            try:
                await meet(alice, bob)
                await bob.say("/create quiet")
                state = await bob.until(
                    lambda s: getattr(s.chat(s.active_chat), "name", "") == "quiet"
                )
                quiet = state.active_chat
                terminal.notes.clear()  # the invite rang and notified
                terminal.noted.clear()
                general = next(c.id for c in bob.state.chats if c.name == "general")
                # Sent by a program: a bidi override and a line separator
                # (the server refuses control characters themselves).
                typist = CrabClient("127.0.0.1", crab.port)
                try:
                    await typist.sign_in("alice", "secret-pass")
                    await say_all(typist, general, ["@bob look; here \u202eevil\u2028now"])
                finally:
                    typist.close()
                async with asyncio.timeout(10):
                    await terminal.noted.wait()
                (note,) = terminal.notes
                assert note == "\x1b]777;notify;#general;alice: @bob look, here evil now\x07"
                # Muted: the next mention counts, but neither rings nor notifies.
                bob.app.store.dispatch(OpenChat(general))
                await bob.say("/mute")
                await bob.until(lambda s: general in s.muted)
                bob.app.store.dispatch(OpenChat(quiet or 0))
                await bob.until(lambda s: s.active_chat == quiet)
                await alice.say("@bob again")
                await bob.until(lambda s: any(c.id == general and c.unread for c in s.chats))
                assert len(terminal.notes) == 1
            finally:
                if app.app.is_running:
                    app.app.exit()
                await asyncio.wait_for(task, 10)
